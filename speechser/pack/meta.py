"""The fields of a packed model's ``meta.json`` that steer inference, checked when the archive is loaded.

``meta.json`` carries the sha256 of every other member, so it cannot carry its own: anyone can edit it and
recompute nothing. Each field that changes what inference does is therefore range-checked here, and a
field that repeats a checksummed member (the label list) must agree with it (:func:`check_labels`):

    task                one of ser, asr, asr_ser, ser_fusion
    min_duration        seconds, finite, in [0, 60]
    labels              (ser) distinct non-empty strings
    cmvn_type           (ser) global, speaker, utterance or none
    min_speaker_frames  (ser) a whole number in [1, 10^6]
    knn                 (ser) null, or beta in [0, 1], k a whole number >= 1, temperature finite > 0,
                        backend torch or faiss
    decoder, beam       (asr, asr_ser) a known decoder; a whole number in [1, 1000]
    weights             (ser_fusion) one finite weight >= 0 per member, summing to 1 (within 1e-6): a
                        convex combination of the members' posteriors, as the recipe's fusion chose it
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, List, Mapping, Sequence

from speechser.pack.archive import PackError

TASKS = ("ser", "asr", "asr_ser", "ser_fusion")
CMVN_TYPES = ("global", "speaker", "utterance", "none")
KNN_BACKENDS = ("torch", "faiss")
MAX_MIN_DURATION = 60.0


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _whole(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


class _Checker:
    """The checks of one archive's ``meta.json``; the first field out of range raises :class:`PackError`."""

    def __init__(self, meta: Mapping[str, Any], path: Path | str) -> None:
        self.meta, self.path = meta, path

    def fail(self, key: str, want: str, value: Any) -> None:
        raise PackError(f"{self.path}: meta.json: '{key}' is {value!r}, but must be {want} (a damaged or doctored "
                        "archive: meta.json is not covered by the checksums; pack the experiment again)")

    def number(self, key: str, low: float, high: float, required: bool = False) -> None:
        if key not in self.meta and not required:
            return
        v = self.meta.get(key)
        if not _number(v) or not low <= v <= high:
            self.fail(key, f"a finite number in [{low:g}, {high:g}]", v)

    def whole(self, key: str, low: int, high: int) -> None:
        if key in self.meta and not _whole(self.meta[key], low, high):
            self.fail(key, f"a whole number in [{low}, {high}]", self.meta[key])

    def choice(self, key: str, choices: Sequence[str]) -> None:
        if key in self.meta and self.meta[key] not in choices:
            self.fail(key, f"one of {', '.join(choices)}", self.meta[key])


def check_meta(meta: Mapping[str, Any], path: Path | str) -> None:
    """Raise :class:`PackError` naming the archive and the field for any field out of its range (see the
    module docstring)."""
    from speechser.tasks.asr import DECODERS

    c = _Checker(meta, path)
    c.choice("task", TASKS)
    c.number("min_duration", 0.0, MAX_MIN_DURATION)
    task = meta.get("task")
    if task == "ser":
        labels = meta.get("labels")
        if labels is not None and not valid_labels(labels):
            c.fail("labels", "a list of distinct non-empty strings", labels)
        c.choice("cmvn_type", CMVN_TYPES)
        c.whole("min_speaker_frames", 1, 10**6)
        knn = meta.get("knn")
        if knn is not None:
            if not isinstance(knn, dict):
                c.fail("knn", "null or an object", knn)
            k = _Checker(knn, path)
            k.number("beta", 0.0, 1.0, required=True)
            k.number("temperature", 1e-6, 1e6, required=True)
            if not _whole(knn.get("k"), 1, 10**6):
                k.fail("knn.k", "a whole number in [1, 1000000]", knn.get("k"))
            k.choice("backend", KNN_BACKENDS)
    if task in ("asr", "asr_ser"):
        c.choice("decoder", DECODERS)
        c.whole("beam", 1, 1000)
    if task == "ser_fusion":
        weights = meta.get("weights")
        members = meta.get("members")
        if not isinstance(weights, list) or not weights or not all(_number(w) and w >= 0 for w in weights):
            c.fail("weights", "a non-empty list of finite weights >= 0, one per member", weights)
        if abs(math.fsum(weights) - 1.0) > 1e-6:
            c.fail("weights", f"weights that sum to 1 (they sum to {math.fsum(weights):.6g})", weights)
        if not isinstance(members, list) or len(members) != len(weights):
            c.fail("members", f"a list of {len(weights)} member(s), one per weight", members)


def valid_labels(labels: Any) -> bool:
    return (isinstance(labels, list) and bool(labels) and all(isinstance(x, str) and x.strip() == x and x
                                                                for x in labels) and len(set(labels)) == len(labels))


def check_labels(path: Path | str, sources: Mapping[str, List[str] | None]) -> List[str]:
    """The one label list that every source (member or field name -> its list; None: not in this archive)
    gives; a :class:`PackError` naming the two that disagree otherwise (a relabelled archive)."""
    given = [(name, list(v)) for name, v in sources.items() if v is not None]
    if not given:
        raise PackError(f"{path}: no label list (labels.txt, config.yaml or meta.json)")
    first_name, first = given[0]
    for name, labels in given[1:]:
        if labels != first:
            raise PackError(f"{path}: the label lists disagree: {first_name} gives {first}, {name} gives {labels} "
                            "(a modified archive: every utterance would get the wrong name); pack the experiment "
                            "again")
    return first
