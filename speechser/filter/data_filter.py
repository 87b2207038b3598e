"""One round of the data filter: keep an utterance only if

    conf_min < confidence < conf_max   and   wer_min < WER < wer_max

where WER is the utterance's word error rate against its reference (both
normalized by :func:`speechser.text.normalize.normalize_text`, as the WER
scorer :mod:`speechser.metrics.asr` normalizes them) and the confidence is
the decoder's CTC confidence (see :func:`speechser.decode.ctc.ctc_greedy_search`). Defaults are the paper's
(0.3, 0.95, 5 %, 40 %). Utterances below ``wer_min`` or above ``conf_max``
are "too easy"; above ``wer_max`` or below ``conf_min`` "too corrupt"; an
utterance the decoder did not produce (e.g. too short for its transcript)
is removed as "not decoded". The report counts each violated bound (an
utterance may violate two) and each category once per utterance.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional

from speechser.io.datadir import DataDirError, read_kv, subset_data_dir
from speechser.metrics.asr import edit_distance
from speechser.text.normalize import normalize_text

BOUNDS = ("conf_low", "conf_high", "wer_low", "wer_high")


@dataclass
class FilterBounds:
    conf_min: float = 0.3
    conf_max: float = 0.95
    wer_min: float = 0.05
    wer_max: float = 0.40


def utterance_wer(ref: str, hyp: str) -> float:
    """Word edit distance / reference words, after the scorer's normalization of both texts
    (:func:`~speechser.text.normalize.normalize_text`: NFC, whitespace collapsed), so that the filter's WER
    is the scorer's WER of the utterance; an empty reference gives 0 (empty hyp) or inf."""
    r, h = normalize_text(ref).split(), normalize_text(hyp).split()
    if not r:
        return 0.0 if not h else math.inf
    return edit_distance(h, r) / len(r)


def violations(wer: float, conf: float, b: FilterBounds) -> List[str]:
    """The bounds an utterance violates (empty: kept). A NaN confidence violates both confidence bounds."""
    out = []
    if not conf > b.conf_min:
        out.append("conf_low")
    if not conf < b.conf_max:
        out.append("conf_high")
    if not wer > b.wer_min:
        out.append("wer_low")
    if not wer < b.wer_max:
        out.append("wer_high")
    return out


@dataclass
class FilterReport:
    total: int = 0
    kept: int = 0
    removed: int = 0
    too_easy: int = 0
    too_corrupt: int = 0
    not_decoded: int = 0
    by_bound: Dict[str, int] = field(default_factory=lambda: {k: 0 for k in BOUNDS})
    bounds: Dict[str, float] = field(default_factory=dict)

    def text(self) -> str:
        lines = [f"utterances {self.total}: kept {self.kept}, removed {self.removed}",
                 f"  too easy (WER <= {self.bounds['wer_min']} or conf >= {self.bounds['conf_max']}): {self.too_easy}",
                 f"  too corrupt (WER >= {self.bounds['wer_max']} or conf <= {self.bounds['conf_min']}): "
                 f"{self.too_corrupt}",
                 f"  not decoded: {self.not_decoded}", "  by bound:"]
        lines += [f"    {k}: {v}" for k, v in self.by_bound.items()]
        return "\n".join(lines) + "\n"


def filter_utterances(refs: Mapping[str, str], hyps: Mapping[str, str], confs: Mapping[str, float],
                      bounds: FilterBounds) -> tuple[List[str], FilterReport, List[str]]:
    """Returns (kept keys, report, per-utterance rows ``utt<TAB>wer<TAB>conf<TAB>decision``)."""
    report = FilterReport(total=len(refs), bounds=asdict(bounds))
    kept: List[str] = []
    rows: List[str] = []
    for key in sorted(refs):
        if key not in hyps:
            report.not_decoded += 1
            rows.append(f"{key}\tnan\tnan\tnot_decoded")
            continue
        wer = utterance_wer(refs[key], hyps[key])
        conf = float(confs.get(key, math.nan))
        bad = violations(wer, conf, bounds)
        for b in bad:
            report.by_bound[b] += 1
        if bad:
            if {"wer_low", "conf_high"} & set(bad):
                report.too_easy += 1
            if {"wer_high", "conf_low"} & set(bad):
                report.too_corrupt += 1
        else:
            kept.append(key)
        rows.append(f"{key}\t{wer:.4f}\t{conf:.4f}\t{'kept' if not bad else ','.join(bad)}")
    report.kept = len(kept)
    report.removed = report.total - report.kept
    return kept, report, rows


def read_confidences(path: Path | str) -> Dict[str, float]:
    out = {}
    for k, v in read_kv(path).items():
        try:
            out[k] = float(v)
        except ValueError:
            raise DataDirError(f"{path}: utterance '{k}' has a non-numeric confidence '{v}'") from None
    return out


def filter_data_dir(data_dir: Path | str, decode_dir: Path | str, out_dir: Path | str,
                    bounds: Optional[FilterBounds] = None) -> FilterReport:
    """Filter ``data_dir`` by a decode of it (``decode_dir/text`` and ``decode_dir/confidence``; the
    references are ``decode_dir/ref``, the tokenizer's normalization of ``data_dir/text``, where the
    decoder wrote one).

    Writes the kept utterances as the data directory ``out_dir`` and, beside
    it, ``<out_dir>.report.json``, ``<out_dir>.report.txt`` and
    ``<out_dir>.utt_stats.tsv``. Keeping nothing is an error (the next
    round could not train).
    """
    bounds = bounds or FilterBounds()
    data_dir, decode_dir, out_dir = Path(data_dir), Path(decode_dir), Path(out_dir)
    refs = read_kv(data_dir / "text")
    if (decode_dir / "ref").is_file():
        # The references as the decoder's tokenizer normalized them (e.g. lower-cased, when the token
        # list was made with --lowercase): the hypotheses are in that form, so the WER must be too.
        normalized = read_kv(decode_dir / "ref", allow_empty_value=True)
        if set(normalized) != set(refs):
            odd = sorted(set(normalized) ^ set(refs))[0]
            raise DataDirError(f"{decode_dir}/ref: its utterances differ from {data_dir}/text (e.g. '{odd}'): "
                               "the decode is of another set")
        refs = normalized
    hyps = read_kv(decode_dir / "text")
    extra = sorted(set(hyps) - set(refs))
    if extra:
        raise DataDirError(f"{decode_dir}/text: utterance '{extra[0]}' is not in {data_dir}/text")
    kept, report, rows = filter_utterances(refs, hyps, read_confidences(decode_dir / "confidence"), bounds)
    base = out_dir.parent / out_dir.name
    Path(str(base) + ".report.json").parent.mkdir(parents=True, exist_ok=True)
    Path(str(base) + ".report.json").write_text(json.dumps(asdict(report), indent=1))
    Path(str(base) + ".report.txt").write_text(report.text())
    Path(str(base) + ".utt_stats.tsv").write_text("utt\twer\tconfidence\tdecision\n" + "\n".join(rows) + "\n")
    if not kept:
        raise DataDirError(f"the filter kept no utterance of {data_dir} (see {base}.report.txt)")
    subset_data_dir(data_dir, out_dir, utt_list=kept)
    return report
