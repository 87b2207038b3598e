"""ASR scoring through jiwer: WER/CER, an ESPnet-style summary table, per-utterance alignments."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence

import jiwer

from speechser.io.datadir import DataDirError
from speechser.metrics.evaluator import Evaluator
from speechser.text.normalize import normalize_text


@dataclass
class ErrorCounts:
    """Counts for one unit (words or characters); rates in [0, inf) as fractions."""

    sentences: int
    sentence_errors: int
    ref_units: int
    correct: int
    substitutions: int
    deletions: int
    insertions: int

    @property
    def error_rate(self) -> float:
        return (self.substitutions + self.deletions + self.insertions) / max(self.ref_units, 1)

    def table_row(self, name: str) -> str:
        """``| name | Snt | Wrd | Corr | Sub | Del | Ins | Err | S.Err |`` in percent, as ESPnet prints."""
        n = max(self.ref_units, 1)
        pct = lambda x: f"{100 * x / n:.1f}"  # noqa: E731
        return (f"| {name} | {self.sentences} | {self.ref_units} | {pct(self.correct)} | {pct(self.substitutions)} | "
                f"{pct(self.deletions)} | {pct(self.insertions)} | {100 * self.error_rate:.1f} | "
                f"{100 * self.sentence_errors / max(self.sentences, 1):.1f} |")


TABLE_HEADER = "| dataset | Snt | Wrd | Corr | Sub | Del | Ins | Err | S.Err |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |"


def missing_hypotheses(refs: Mapping[str, str], hyps: Mapping[str, str], allow_missing: bool = False) -> List[str]:
    """The reference keys that have no hypothesis, sorted.

    A hypothesis for a key that is not a reference is always an error. A
    reference without a hypothesis is an error naming the keys (a WER over
    fewer utterances than the set has is not the set's WER) unless
    ``allow_missing``: then the caller scores it as an empty hypothesis (all
    its words deleted) and reports the count.
    """
    extra = sorted(set(hyps) - set(refs))
    if extra:
        raise DataDirError(f"hypothesis for unknown utterance '{extra[0]}' ({len(extra)} such)")
    missing = sorted(set(refs) - set(hyps))
    if missing and not allow_missing:
        shown = ", ".join(missing[:10]) + (", ..." if len(missing) > 10 else "")
        raise DataDirError(f"no hypothesis for {len(missing)} of {len(refs)} reference utterance(s): {shown} "
                           "(decode every utterance, or score with allow_missing / --allow-missing to count "
                           "them as empty hypotheses)")
    return missing


def _pairs(refs: Mapping[str, str], hyps: Mapping[str, str],
           allow_missing: bool = False) -> tuple[List[str], List[str], List[str]]:
    missing_hypotheses(refs, hyps, allow_missing)
    keys = sorted(refs)
    return keys, [normalize_text(refs[k]) for k in keys], [normalize_text(hyps.get(k, "")) for k in keys]


def score_words(refs: Mapping[str, str], hyps: Mapping[str, str],
                allow_missing: bool = False) -> tuple[ErrorCounts, str]:
    """Word-level counts and a per-utterance alignment text (REF/HYP lines with S/D/I marks).

    An empty reference is scored by counting every hypothesis word as an
    insertion (jiwer refuses empty references)."""
    keys, r, h = _pairs(refs, hyps, allow_missing)
    counts = ErrorCounts(len(keys), 0, 0, 0, 0, 0, 0)
    blocks: List[str] = []
    for key, ref, hyp in zip(keys, r, h):
        if not ref:
            ins = len(hyp.split())
            counts.insertions += ins
            counts.sentence_errors += int(ins > 0)
            blocks.append(f"id: {key}\nREF: \nHYP: {hyp}\n")
            continue
        out = jiwer.process_words(ref, hyp)
        counts.ref_units += len(ref.split())
        counts.correct += out.hits
        counts.substitutions += out.substitutions
        counts.deletions += out.deletions
        counts.insertions += out.insertions
        counts.sentence_errors += int(out.substitutions + out.deletions + out.insertions > 0)
        alignment = jiwer.visualize_alignment(out, show_measures=False).split("\n", 2)[-1].strip("\n")
        blocks.append(f"id: {key}\n{alignment}\n")
    return counts, "\n".join(blocks)


def score_chars(refs: Mapping[str, str], hyps: Mapping[str, str], allow_missing: bool = False) -> ErrorCounts:
    """Character-level counts over the texts without spaces."""
    keys, r, h = _pairs(refs, hyps, allow_missing)
    counts = ErrorCounts(len(keys), 0, 0, 0, 0, 0, 0)
    for ref, hyp in zip(r, h):
        ref_c, hyp_c = ref.replace(" ", ""), hyp.replace(" ", "")
        if not ref_c:
            counts.insertions += len(hyp_c)
            counts.sentence_errors += int(bool(hyp_c))
            continue
        out = jiwer.process_characters(ref_c, hyp_c)
        counts.ref_units += len(ref_c)
        counts.correct += out.hits
        counts.substitutions += out.substitutions
        counts.deletions += out.deletions
        counts.insertions += out.insertions
        counts.sentence_errors += int(out.substitutions + out.deletions + out.insertions > 0)
    return counts


def write_asr_scores(refs: Mapping[str, str], hyps: Mapping[str, str], out_dir: Path | str,
                     name: str = "test", allow_missing: bool = False) -> Dict[str, float]:
    """Write ``result.wer.md`` and ``result.cer.md`` (tables) and ``alignment.txt``; return WER, CER and
    the number of references without a hypothesis (``missing``, 0 unless ``allow_missing``)."""
    missing = missing_hypotheses(refs, hyps, allow_missing)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    words, alignment = score_words(refs, hyps, allow_missing)
    chars = score_chars(refs, hyps, allow_missing)
    (out / "result.wer.md").write_text(f"{TABLE_HEADER}\n{words.table_row(name)}\n")
    (out / "result.cer.md").write_text(f"{TABLE_HEADER.replace('Wrd', 'Chr')}\n{chars.table_row(name)}\n")
    (out / "alignment.txt").write_text(alignment)
    return {"wer": words.error_rate, "cer": chars.error_rate, "missing": len(missing)}


def edit_distance(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Levenshtein distance between two sequences (tokens or words)."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
        prev = cur
    return prev[-1]


class TokenAccuracyEvaluator(Evaluator):
    """The validation metrics of ASR models: the mean loss and the token accuracy
    ``1 - edit_distance / ref_tokens`` of the hypotheses ``output["hyps"]`` (token id lists, CTC greedy)
    against ``batch.targets`` ``(B, L)`` cut at ``batch.target_lengths``."""

    def __init__(self) -> None:
        self.loss_sum = 0.0
        self.n_utts = 0
        self.errors = 0
        self.ref_tokens = 0

    def update(self, output: Dict[str, Any], batch: Any) -> None:
        self.loss_sum += float(output["loss"]) * len(batch)
        self.n_utts += len(batch)
        for hyp, ref, n in zip(output["hyps"], batch.targets.tolist(), batch.target_lengths.tolist()):
            self.errors += edit_distance(hyp, ref[:n])
            self.ref_tokens += n

    SUMMED = ("loss_sum", "n_utts", "errors", "ref_tokens")

    def compute(self) -> Dict[str, float]:
        return {"loss": self.loss_sum / max(self.n_utts, 1), "acc": 1.0 - self.errors / max(self.ref_tokens, 1)}
