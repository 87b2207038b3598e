#!/usr/bin/env python3
"""The table of local/run_corrupted_filter.sh (clean, corrupted and filtered training sets: dev/test WER,
the filter's precision and recall) as section "corrupted-filter" of RESULTS.md, also printed.

Usage: local/corrupted_filter_table.py <results_md> <command> <seconds> <fraction> <seed> <train_config>
           <tag_prefix> <corrupted_feature_dir>"""
import json
import sys
from pathlib import Path

from speechser.filter.corrupt import read_corrupted_list
from speechser.metrics.report import environment_line, replace_section

md, cmd, secs, fraction, seed, train_config, prefix, bad = sys.argv[1:]


def wers(exp):
    return [100 * json.loads((Path(exp) / f"decode_ctc_greedy_{s}" / "scores.json").read_text())["wer"]
            for s in ("train_dev", "test")]


n_train = sum(1 for _ in open(Path(bad) / "text"))
kinds = read_corrupted_list(Path(bad) / "corrupted")
count = {k: sum(v == k for v in kinds.values()) for k in ("substituted", "truncated", "swapped")}
rows, filtered = [], {}
for cond, label in (("clean", "clean transcripts"), ("corrupt", f"{float(fraction):.0%} corrupted")):
    dev, test = wers(f"exp/{prefix}_{cond}")
    rows.append((label, str(n_train), "", "", "", dev, test))
for v, label in (("paper", "paper's bounds"), ("upper", "upper bounds only")):
    out = Path(f"exp/{prefix}_corrupt/filter_{v}")
    det = json.loads((out / "detection.json").read_text())
    rep = json.loads((out / "round1" / "data.report.json").read_text())
    exp = out / "round1" / "asr"
    dev, test = wers(exp)
    filtered[v] = dev
    rows.append((f"filtered, {label}", str(rep["kept"]), f"{rep['too_easy']} / {rep['too_corrupt']}",
                 f"{100 * det['precision']:.1f}", f"{100 * det['recall']:.1f}", dev, test))
best = min(filtered, key=filtered.get)
lines = ["## corrupted-transcript filter experiment", "",
         f"- environment: {environment_line()}", f"- command: `{cmd}`; wall time {secs} s",
         f"- {len(kinds)} of the {n_train // 3} training recordings ({float(fraction):.0%}, seed {seed}) corrupted, "
         f"with all 3 speed-perturbed copies of each: {count['substituted']} substituted, {count['truncated']} "
         f"truncated, {count['swapped']} swapped (`speechser-corrupt-transcripts`); dev and test untouched",
         f"- every model: `{train_config}`, decoded with CTC greedy, model {Path('valid.acc.ave_5best.pt')}",
         "- one filter round, decoding the corrupted training set with the corrupted model; the kept set is "
         "trained from scratch with the same schedule",
         "- precision / recall: of the utterances the filter removed as too corrupt (WER >= wer_max or "
         "confidence <= conf_min), how many were corrupted / of the corrupted, how many it removed",
         f"- selected on dev WER: **{'paper' if best == 'paper' else 'upper'} bounds** (marked *)", "",
         "| training transcripts | training utts | removed easy / corrupt | precision % | recall % | dev WER % | "
         "test WER % |", "| --- | --- | --- | --- | --- | --- | --- |"]
for i, (label, n, rem, p, r, dev, test) in enumerate(rows):
    star = " *" if (i == 2 and best == "paper") or (i == 3 and best == "upper") else ""
    lines.append(f"| {label}{star} | {n} | {rem or '-'} | {p or '-'} | {r or '-'} | {dev:.2f} | {test:.2f} |")
replace_section(md, "corrupted-filter", "\n".join(lines) + "\n", "# RESULTS: an4/asr1")
print("\n".join(lines))
