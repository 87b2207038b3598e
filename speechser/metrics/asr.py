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


def asr_report(decode_dirs: List[Path | str], title: str, command: str, notes: str = "",
               allow_missing: bool = False) -> str:
    """A Markdown section with the WER and CER tables of decode directories
    (each holding ``result.wer.md``, ``result.cer.md`` and ``scores.json``),
    one row per directory named ``<decode dir>``.

    A decode that did not score every utterance of its set (``scores.json``
    says ``n`` < ``n_ref``, records ``missing`` or ``skipped`` ones, or does
    not say) is refused, naming the directory, unless ``allow_missing``:
    then the note says how many were missing."""
    import datetime

    from speechser.metrics.decode_dir import check_fresh, read_scores_json, unique_dirs
    from speechser.metrics.report import environment_line

    wer_rows, cer_rows = [], []
    for d in unique_dirs(decode_dirs):
        for name, rows in (("result.wer.md", wer_rows), ("result.cer.md", cer_rows)):
            if not (d / name).is_file():
                raise DataDirError(f"{d}/{name}: no such file (run decoding first)")
            row = (d / name).read_text().splitlines()[-1]
            rows.append(row.replace("| test |", f"| {d.parent.name}/{d.name} |", 1))
        meta = read_scores_json(d)
        check_fresh(d, ("result.wer.md", "result.cer.md", "scores.json"), meta)
        n, n_ref = meta.get("n"), meta.get("n_ref")
        lost = len(meta.get("skipped") or []) + int(meta.get("missing") or 0)
        if n_ref is None or n is None or n != n_ref or lost:
            what = (f"{n} of {n_ref} utterance(s) decoded, {lost} missing or skipped" if n_ref is not None
                    else "it does not record how many utterances its set has (decoded by an older speechser?)")
            if not allow_missing:
                raise DataDirError(f"{d}/scores.json: not every utterance of the set was scored: {what}; "
                                   "decode again, or pass --allow-missing to report it as it is")
            notes += f" {d.name}: {what}."
    lines = [f"## {title}", "", f"- date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}",
             f"- environment: {environment_line()}", f"- command: `{command}`"]
    if notes.strip():
        lines.append(f"- {notes.strip()}")
    lines += ["", "### WER", "", TABLE_HEADER, *wer_rows, "", "### CER", "",
              TABLE_HEADER.replace("Wrd", "Chr"), *cer_rows, ""]
    return "\n".join(lines)


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
