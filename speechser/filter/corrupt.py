"""Seeded transcript corruption, and how well a filter finds it.

To show that the data filter (:mod:`speechser.filter.data_filter`) removes
what it is meant to remove, a known fraction of a training set's transcripts
is corrupted on purpose, a model is trained on the result, and the filter's
"too corrupt" decisions are compared with the list of corrupted utterances.

Corruption is decided per *group*: the speed-perturbed copies ``sp0.9-X``
and ``sp1.1-X`` of ``X`` belong to ``X``'s group (``group_of``), so the
copies of one recording carry the same (corrupted or clean) transcript, as
they would in a real corpus. A fraction ``f`` of the groups, drawn with
``random.Random(seed)``, is corrupted, in three equal shares:

- ``substituted``: each word replaced, with probability 1/2 (at least one
  word), by a different word drawn from the set's vocabulary;
- ``truncated``: only the first ``ceil(n / 2) - 1`` words (at least one) of
  an ``n``-word transcript kept; a one-word transcript is substituted instead;
- ``swapped``: the transcripts of two corrupted groups exchanged (pairs in
  draw order; identical transcripts, or an odd one left, are substituted).

Detection is scored against the filter's per-utterance table
(``<kept dir>.utt_stats.tsv``): an utterance is *flagged* when the filter
removed it as too corrupt (``wer_high`` or ``conf_low``) or could not decode
it; ``precision = |flagged ∩ corrupted| / |flagged|``,
``recall = |flagged ∩ corrupted| / |corrupted|``, both over utterances (every
speed-perturbed copy counts).
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Set, Tuple

from speechser.io.datadir import DataDirError

KINDS = ("substituted", "truncated", "swapped")
#: The speed-perturbation prefix of :func:`speechser.io.format.speed_perturb_data_dir`.
SPEED_PREFIX = re.compile(r"^sp[0-9.]+-")


def group_of(key: str) -> str:
    """The recording an utterance key belongs to (``sp0.9-X`` -> ``X``)."""
    return SPEED_PREFIX.sub("", key)


def _substitute(words: List[str], vocab: List[str], rng: random.Random) -> List[str]:
    out = list(words)
    picks = [i for i in range(len(words)) if rng.random() < 0.5] or [rng.randrange(len(words))]
    for i in picks:
        choices = [w for w in vocab if w != words[i]]
        if choices:
            out[i] = rng.choice(choices)
    return out


def corrupt_transcripts(
    texts: Mapping[str, str],
    fraction: float,
    seed: int = 0,
    group: Callable[[str], str] = group_of,
) -> Tuple[Dict[str, str], Dict[str, str]]:
    """Corrupt ``fraction`` of the groups of ``texts`` (key -> transcript).

    Returns ``(new_texts, corrupted)`` where ``corrupted`` maps each changed
    group to its kind. Every key of a corrupted group gets the same new
    transcript; the draw depends only on ``seed`` and the sorted keys.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    rng = random.Random(seed)
    groups: Dict[str, str] = {}
    for key in sorted(texts):
        g = group(key)
        if g in groups and groups[g] != texts[key]:
            raise DataDirError(f"utterances of recording '{g}' have different transcripts ('{key}')")
        groups.setdefault(g, texts[key])
    names = sorted(groups)
    vocab = sorted({w for t in groups.values() for w in t.split()})
    chosen = rng.sample(names, round(fraction * len(names)))
    kinds = {g: KINDS[i % 3] for i, g in enumerate(chosen)}  # equal shares, in draw order
    new: Dict[str, str] = {}
    swapped = [g for g in chosen if kinds[g] == "swapped"]
    for a, b in zip(swapped[0::2], swapped[1::2]):
        if groups[a] != groups[b]:
            new[a], new[b] = groups[b], groups[a]
    for g in chosen:
        if g in new:
            continue
        words = groups[g].split()
        if kinds[g] == "truncated" and len(words) > 1:
            new[g] = " ".join(words[: max(1, math.ceil(len(words) / 2) - 1)])
            continue
        kinds[g] = "substituted"
        new[g] = " ".join(_substitute(words, vocab, rng)) if words else rng.choice(vocab)
    out = {k: new.get(group(k), v) for k, v in texts.items()}
    corrupted = {g: kinds[g] for g in chosen if new[g] != groups[g]}
    return out, corrupted


@dataclass
class DetectionScores:
    utterances: int
    corrupted: int
    flagged: int
    true_positives: int

    @property
    def precision(self) -> float:
        return self.true_positives / self.flagged if self.flagged else math.nan

    @property
    def recall(self) -> float:
        return self.true_positives / self.corrupted if self.corrupted else math.nan


def read_corrupted_list(path: Path | str) -> Dict[str, str]:
    """``<group> <kind>`` lines, as written by ``speechser-corrupt-transcripts``."""
    out: Dict[str, str] = {}
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if len(parts) != 2 or parts[1] not in KINDS:
            raise DataDirError(f"{path}:{n}: expected '<recording> <{'|'.join(KINDS)}>', got '{line}'")
        out[parts[0]] = parts[1]
    return out


def detection_scores(utt_stats: Path | str, corrupted_groups: Set[str] | Mapping[str, str],
                     group: Callable[[str], str] = group_of) -> DetectionScores:
    """Precision and recall of the filter's "too corrupt" removals (see the module docstring)."""
    path = Path(utt_stats)
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or lines[0].split("\t")[:4] != ["utt", "wer", "confidence", "decision"]:
        raise DataDirError(f"{path}:1: expected the header 'utt<TAB>wer<TAB>confidence<TAB>decision'")
    n = tp = flagged = corrupt = 0
    for i, line in enumerate(lines[1:], 2):
        parts = line.split("\t")
        if len(parts) < 4:
            raise DataDirError(f"{path}:{i}: expected 4 tab-separated fields, got '{line}'")
        key, decision = parts[0], parts[3]
        is_bad = group(key) in corrupted_groups
        flag = decision == "not_decoded" or bool({"wer_high", "conf_low"} & set(decision.split(",")))
        n += 1
        corrupt += is_bad
        flagged += flag
        tp += is_bad and flag
    return DetectionScores(n, corrupt, flagged, tp)
