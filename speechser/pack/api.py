"""The Python API over a packed model, in the manner of ESPnet's ``Speech2Text`` and SpeechBrain's
``from_hparams``::

    from speechser import Speech2TextEmotion
    m = Speech2TextEmotion.from_packed("exp/train_compare_logreg/loso/packed/fold1.tar")
    r = m("file.wav")                 # -> Recognition: r.emotion, r.probabilities, r.transcript
    run = m.infer(["recordings/"])    # a folder, files, a list file or a wav.scp -> InferenceRun
    write_outputs(run, "out/")        # results.tsv, results.jsonl, utt2emo (and text), skipped

Audio of any sample rate and channel count is mixed down and resampled as in training. A recording longer
than ``max_seconds`` is cut into equal segments (:mod:`speechser.pack.inputs`): each segment is a row of
the outputs, and the recording as a whole (:meth:`Speech2TextEmotion.__call__`) gets the duration-weighted
mean of its segments' posteriors. SER archives give no transcript (``None``), ASR archives no emotion; the
joint ASR + SER system's archive gives both, in one pass (:mod:`speechser.pack.packed_joint`).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import soundfile

from speechser.pack.inputs import (InputSet, NothingToLabel, check_out_dir, collect_inputs, run_commands,
                                   segment_bounds, write_input_dir)
from speechser.pack.archive import PackError, archive_task
from speechser.pack.packed_asr import PackedASR
from speechser.pack.packed_fusion import PackedFusion
from speechser.pack.packed_joint import PackedJoint
from speechser.pack.packed_ser import PackedSER

#: The class that loads an archive of each task (its ``meta.json``'s ``task``).
PACKED_CLASSES = {c.task: c for c in (PackedSER, PackedASR, PackedJoint, PackedFusion)}


@dataclass
class Recognition:
    """One utterance (a file, or a segment of a long one): its emotion and class posteriors; ``start`` and
    ``end`` in seconds within ``recording``; ``transcript``/``asr_confidence`` for joint archives."""

    key: str
    recording: str
    start: Optional[float]
    end: Optional[float]
    emotion: Optional[str] = None
    probabilities: Dict[str, float] = field(default_factory=dict)
    transcript: Optional[str] = None
    asr_confidence: Optional[float] = None
    segments: List["Recognition"] = field(default_factory=list)

    def to_json(self) -> Dict[str, object]:
        out = asdict(self)
        out.pop("segments")
        return out


@dataclass
class InferenceRun:
    """Every utterance labelled (sorted by key), and the inputs skipped with their reasons."""

    labels: List[str]
    items: List[Recognition]
    skipped: Dict[str, str]
    #: What was read (never written over by :func:`write_outputs`).
    inputs: Optional[InputSet] = None


class Speech2TextEmotion:
    """Label audio with a packed model (see the module docstring): emotions with an SER archive or a packed
    late fusion / ensemble, transcripts with an ASR archive, both (in one pass) with a joint archive."""

    def __init__(self, packed: PackedSER | PackedASR | PackedJoint | PackedFusion) -> None:
        self.packed = packed
        #: Seconds spent per step by the last :meth:`infer` of a joint system (features, asr, ser).
        self.last_seconds: Dict[str, float] = {}

    @classmethod
    def from_packed(cls, archive: Path | str, device: str = "auto") -> "Speech2TextEmotion":
        task = archive_task(archive)
        if task not in PACKED_CLASSES:
            raise PackError(f"{archive}: task '{task}' is not one this speechser labels audio with "
                            f"({', '.join(PACKED_CLASSES)})")
        return cls(PACKED_CLASSES[task](archive, device))

    @property
    def labels(self) -> List[str]:
        """The emotion classes (empty for an ASR archive)."""
        return [] if isinstance(self.packed, PackedASR) else list(self.packed.labels)

    @property
    def min_duration(self) -> float:
        """Seconds: shorter audio (or segment) is skipped, as in the recipe that trained the model."""
        return float(self.packed.meta.get("min_duration", 0.0))

    def infer(self, inputs: Sequence[str | Path] | InputSet, speakers: str = "dir", max_seconds: float = 30.0,
              one_pass: bool = True, allow_commands: bool = False) -> InferenceRun:
        """Label every recording of ``inputs`` (files, folders, list files, ``wav.scp``; or what
        :func:`collect_inputs` found in them); ``speakers``: how recordings are grouped for per-speaker
        normalization (``dir``, ``each``, ``one``); ``one_pass`` (joint systems): one featurization and one ASR
        encoder pass for both tasks; ``allow_commands``: run the commands of a ``wav.scp`` (each once; refused
        otherwise). :class:`NothingToLabel` (with every reason) when no input could be labelled."""
        if not max_seconds >= max(self.min_duration, 1e-3):
            raise ValueError(f"max_seconds {max_seconds} is shorter than the {self.min_duration} s this model skips "
                             "audio below: every segment would be skipped; give at least that (e.g. 30)")
        found = inputs if isinstance(inputs, InputSet) else collect_inputs(inputs, speakers, allow_commands)
        with tempfile.TemporaryDirectory(prefix="speechser-infer-") as tmp:
            data_dir = Path(tmp) / "data"
            run_commands(found, Path(tmp) / "commands")
            utt2reco = write_input_dir(found, data_dir, max_seconds)
            bounds = segment_bounds(data_dir)
            hyps: Dict[str, str] = {}
            confs: Dict[str, float] = {}
            if isinstance(self.packed, PackedJoint):
                joint = self.packed.recognize_data_dir(data_dir, Path(tmp) / "work", one_pass)
                hyps, confs, skipped, self.last_seconds = joint.hyps, joint.confs, joint.skipped, joint.seconds
            elif isinstance(self.packed, PackedASR):
                hyps, confs, skipped = self.packed.transcribe_data_dir(data_dir, Path(tmp) / "work")
            else:
                done = self.packed.label_data_dir(data_dir, Path(tmp) / "work")
                skipped = done.skipped
        items = []
        if isinstance(self.packed, PackedASR):
            for key in sorted(hyps):
                start, end = bounds.get(key, (None, None))
                items.append(Recognition(key, utt2reco[key], start, end, transcript=hyps[key],
                                         asr_confidence=confs[key]))
        else:
            outputs = joint.ser if isinstance(self.packed, PackedJoint) else done.outputs
            for key, post in zip(outputs.keys, outputs.post.double().numpy()):
                start, end = bounds.get(key, (None, None))
                probs = {c: float(p) for c, p in zip(self.labels, post)}
                items.append(Recognition(key, utt2reco[key], start, end, self.labels[int(post.argmax())], probs,
                                         hyps.get(key), confs.get(key)))
        if not items:
            raise NothingToLabel({**found.skipped, **skipped})
        return InferenceRun(self.labels, items, {**found.skipped, **skipped}, found)

    def __call__(self, audio: str | Path | np.ndarray, rate: Optional[int] = None, max_seconds: float = 30.0
                 ) -> Recognition:
        """One recording (a path, or samples ``(S,)`` / ``(S, channels)`` at ``rate`` Hz) as a whole; its
        own speaker for per-speaker normalization. A long recording's segments are in ``.segments``."""
        what = "the samples given" if isinstance(audio, np.ndarray) else str(audio)
        with tempfile.TemporaryDirectory(prefix="speechser-call-") as tmp:
            if isinstance(audio, np.ndarray):
                if rate is None:
                    raise ValueError("samples given without their sample rate (rate=...)")
                path = Path(tmp) / "input.wav"
                soundfile.write(str(path), np.asarray(audio, dtype=np.float32), int(rate), subtype="FLOAT")
                audio = path
            try:
                run = self.infer([audio], speakers="each", max_seconds=max_seconds)
            except NothingToLabel as err:  # its reasons name the input by a temporary file's key: say what it was
                raise ValueError(f"{what}: not labelled: {'; '.join(err.skipped.values())}") from None
        if not run.items:
            raise ValueError(f"{what}: not labelled: {'; '.join(run.skipped.values())}")
        return combine_segments(run.items, self.labels)


def combine_segments(items: List[Recognition], labels: List[str]) -> Recognition:
    """The recording of ``items`` (its segments in time order, or one whole file) as one
    :class:`Recognition`: the duration-weighted mean of the segments' posteriors, their transcripts joined
    by spaces and the duration-weighted mean of their ASR confidences."""
    if len(items) == 1 and items[0].start is None:
        return items[0]
    weights = np.array([(r.end or 0.0) - (r.start or 0.0) for r in items], dtype=np.float64)
    weights = weights / weights.sum() if weights.sum() > 0 else np.full(len(items), 1.0 / len(items))
    first = items[0]
    whole = Recognition(first.recording, first.recording, first.start, items[-1].end, segments=list(items))
    if labels:
        post = sum(w * np.array([r.probabilities[c] for c in labels]) for w, r in zip(weights, items))
        whole.emotion, whole.probabilities = labels[int(np.argmax(post))], {c: float(p) for c, p in zip(labels, post)}
    if any(r.transcript is not None for r in items):
        whole.transcript = " ".join(r.transcript for r in items if r.transcript)
        whole.asr_confidence = float(sum(w * (r.asr_confidence or 0.0) for w, r in zip(weights, items)))
    return whole


#: The files :func:`write_outputs` may write.
OUTPUT_NAMES = ("results.tsv", "results.jsonl", "utt2emo", "text", "skipped")


def write_skipped(skipped: Dict[str, str], out_dir: Path | str) -> Path:
    """``out_dir/skipped``: one ``key reason`` line per input skipped."""
    path = Path(out_dir) / "skipped"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{k} {why}\n" for k, why in sorted(skipped.items())), encoding="utf-8")
    return path


def write_outputs(run: InferenceRun, out_dir: Path | str, formats: Sequence[str] = ("tsv", "jsonl")
                  ) -> Dict[str, Path]:
    """Write ``results.tsv`` (``key recording start end emotion transcript asr_confidence`` and one column
    per class), ``results.jsonl``, Kaldi-style ``utt2emo`` (where there are emotions) and ``text`` (where
    there are transcripts) and ``skipped`` (``key reason``) into ``out_dir``; returns name -> path."""
    out_dir = Path(out_dir)
    if run.inputs is not None:
        check_out_dir(run.inputs, out_dir, OUTPUT_NAMES)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: Dict[str, Path] = {}

    def cell(x: object) -> str:
        return "" if x is None else (f"{x:.3f}" if isinstance(x, float) else str(x))

    if "tsv" in formats:
        path = written["tsv"] = out_dir / "results.tsv"
        with open(path, "w", encoding="utf-8") as f:
            f.write("\t".join(["key", "recording", "start", "end", "emotion", "transcript", "asr_confidence",
                               *run.labels]) + "\n")
            for r in run.items:
                f.write("\t".join([r.key, r.recording, cell(r.start), cell(r.end), cell(r.emotion), cell(r.transcript),
                                   cell(r.asr_confidence), *(f"{r.probabilities[c]:.6f}" for c in run.labels)])
                        + "\n")
    if "jsonl" in formats:
        path = written["jsonl"] = out_dir / "results.jsonl"
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r.to_json(), ensure_ascii=False) + "\n" for r in run.items)
    if run.labels:
        written["utt2emo"] = out_dir / "utt2emo"
        written["utt2emo"].write_text("".join(f"{r.key} {r.emotion}\n" for r in run.items), encoding="utf-8")
    if any(r.transcript is not None for r in run.items):
        written["text"] = out_dir / "text"
        written["text"].write_text("".join(f"{r.key} {r.transcript or ''}\n" for r in run.items), encoding="utf-8")
    written["skipped"] = write_skipped(run.skipped, out_dir)
    return written
