"""ASR scoring through jiwer: WER/CER, an ESPnet-style summary table, per-utterance alignments."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence

import jiwer

from speechser.io.datadir import DataDirError
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


def _pairs(refs: Mapping[str, str], hyps: Mapping[str, str]) -> tuple[List[str], List[str], List[str]]:
    missing = sorted(set(refs) - set(hyps))
    if missing:
        raise DataDirError(f"no hypothesis for {len(missing)} utterance(s), first '{missing[0]}'")
    extra = sorted(set(hyps) - set(refs))
    if extra:
        raise DataDirError(f"hypothesis for unknown utterance '{extra[0]}'")
    keys = sorted(refs)
    return keys, [normalize_text(refs[k]) for k in keys], [normalize_text(hyps[k]) for k in keys]


def score_words(refs: Mapping[str, str], hyps: Mapping[str, str]) -> tuple[ErrorCounts, str]:
    """Word-level counts and a per-utterance alignment text (REF/HYP lines with S/D/I marks).

    An empty reference is scored by counting every hypothesis word as an
    insertion (jiwer refuses empty references)."""
    keys, r, h = _pairs(refs, hyps)
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


def score_chars(refs: Mapping[str, str], hyps: Mapping[str, str]) -> ErrorCounts:
    """Character-level counts over the texts without spaces."""
    keys, r, h = _pairs(refs, hyps)
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
                     name: str = "test") -> Dict[str, float]:
    """Write ``result.wer.md`` and ``result.cer.md`` (tables) and ``alignment.txt``; return WER and CER."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    words, alignment = score_words(refs, hyps)
    chars = score_chars(refs, hyps)
    (out / "result.wer.md").write_text(f"{TABLE_HEADER}\n{words.table_row(name)}\n")
    (out / "result.cer.md").write_text(f"{TABLE_HEADER.replace('Wrd', 'Chr')}\n{chars.table_row(name)}\n")
    (out / "alignment.txt").write_text(alignment)
    return {"wer": words.error_rate, "cer": chars.error_rate}


def asr_report(decode_dirs: List[Path | str], title: str, command: str, notes: str = "") -> str:
    """A Markdown section with the WER and CER tables of decode directories
    (each holding ``result.wer.md``, ``result.cer.md`` and ``scores.json``),
    one row per directory named ``<decode dir>``."""
    import datetime
    import json

    from speechser.metrics.report import environment_line

    wer_rows, cer_rows = [], []
    for d in map(Path, decode_dirs):
        for name, rows in (("result.wer.md", wer_rows), ("result.cer.md", cer_rows)):
            if not (d / name).is_file():
                raise DataDirError(f"{d}/{name}: no such file (run decoding first)")
            row = (d / name).read_text().splitlines()[-1]
            rows.append(row.replace("| test |", f"| {d.parent.name}/{d.name} |", 1))
        meta = json.loads((d / "scores.json").read_text())
        if meta.get("skipped"):
            notes += f" {d.name}: {len(meta['skipped'])} utterance(s) not decoded (too short for their transcript)."
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
