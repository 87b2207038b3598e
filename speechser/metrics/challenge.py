"""VLSP 2025 ASR-SER challenge scores.

- ``ACC_SER``: balanced two-class accuracy ``(NEU_correct / NEU + NEG_correct / NEG) / 2``
  over the reference classes ``neutral`` and ``negative``.
- ``Final = 0.7 * (1 - WER) + 0.3 * ACC_SER`` (WER as a fraction).

A corpus's emotion labels are mapped onto the task's classes by a table
(``{corpus_label: task_class}``) read from config; a label missing from
the table is an error, never a silent drop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Mapping, Sequence

from speechser.config import ConfigError, read_yaml

TASK_CLASSES = ("neutral", "negative")


def read_label_map(path: Path | str) -> Dict[str, str]:
    """A YAML mapping ``corpus_label: task_class`` (task classes: neutral, negative)."""
    data = read_yaml(path)
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{path}: expected a mapping 'corpus_label: task_class'")
    out = {}
    for k, v in data.items():
        if str(v) not in TASK_CLASSES:
            raise ConfigError(f"{path}: label '{k}' maps to '{v}', not one of {', '.join(TASK_CLASSES)}")
        out[str(k)] = str(v)
    return out


def map_labels(labels: Mapping[str, str], label_map: Mapping[str, str], what: str = "labels") -> Dict[str, str]:
    """Map ``utt -> corpus label`` onto the task classes; an unmapped label is an error naming it."""
    out = {}
    for utt, lab in labels.items():
        if lab not in label_map:
            raise ConfigError(f"{what}: utterance '{utt}' has label '{lab}', which the label map does not cover")
        out[utt] = label_map[lab]
    return out


def balanced_two_class_accuracy(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """``(NEU_correct / NEU + NEG_correct / NEG) / 2``; both classes must occur in ``refs``."""
    if len(refs) != len(hyps):
        raise ValueError("refs and hyps differ in length")
    recalls = []
    for c in TASK_CLASSES:
        idx = [i for i, r in enumerate(refs) if r == c]
        if not idx:
            raise ValueError(f"no reference utterance of class '{c}': the balanced accuracy is undefined")
        recalls.append(sum(hyps[i] == c for i in idx) / len(idx))
    return sum(recalls) / len(recalls)


def final_score(wer: float, acc_ser: float) -> float:
    """``0.7 * (1 - WER) + 0.3 * ACC_SER`` with WER and ACC as fractions."""
    return 0.7 * (1.0 - wer) + 0.3 * acc_ser


def score_challenge(asr_decode_dir: Path | str, ser_decode_dir: Path | str, label_map_path: Path | str
                    ) -> Dict[str, float]:
    """Scores of one system: WER from an ASR decode directory (``scores.json``, as decode_asr writes it),
    ACC_SER from an SER decode directory (``ref``/``hyp`` with the corpus's labels, mapped through the
    label map), and the final score. Both must cover the same utterances."""
    from speechser.io.datadir import DataDirError, read_kv
    from speechser.metrics.decode_dir import check_fresh, read_scores_json

    asr_dir, ser_dir = Path(asr_decode_dir), Path(ser_decode_dir)
    if not (asr_dir / "scores.json").is_file():
        raise DataDirError(f"{asr_dir}/scores.json: no such file (decode the ASR test set first)")
    asr = read_scores_json(asr_dir)
    check_fresh(asr_dir, ("text", "scores.json"), asr)
    check_fresh(ser_dir, ("hyp", "scores.json"))
    if "wer" not in asr:
        raise DataDirError(f"{asr_dir}/scores.json: has no 'wer' (not an ASR decode?)")
    table = read_label_map(label_map_path)
    refs = map_labels(read_kv(ser_dir / "ref"), table, f"{ser_dir}/ref")
    hyps = map_labels(read_kv(ser_dir / "hyp"), table, f"{ser_dir}/hyp")
    asr_keys = set(read_kv(asr_dir / "text"))
    if set(refs) != set(hyps) or set(refs) != asr_keys:
        raise DataDirError(f"{ser_dir} and {asr_dir} do not cover the same utterances")
    keys = sorted(refs)
    acc = balanced_two_class_accuracy([refs[k] for k in keys], [hyps[k] for k in keys])
    wer = float(asr["wer"])
    return {"wer": wer, "acc_ser": acc, "final": final_score(wer, acc), "n": len(keys)}


def challenge_report(scores: Dict[str, float], title: str, command: str, notes: str = "") -> str:
    import datetime

    from speechser.metrics.report import environment_line

    return "\n".join([
        f"## {title}", "",
        f"- date: {datetime.datetime.now():%Y-%m-%d %H:%M}",
        f"- environment: {environment_line()}",
        f"- command: `{command}`",
        *([f"- {notes}"] if notes else []), "",
        "| utts | WER % | ACC_SER % | Final = 0.7 (1 - WER) + 0.3 ACC_SER |",
        "| --- | --- | --- | --- |",
        f"| {int(scores['n'])} | {100 * scores['wer']:.2f} | {100 * scores['acc_ser']:.2f} | {scores['final']:.4f} |",
        "",
    ])
