"""speechser-score-ser: score decode directories (one per fold), print a table, update RESULTS.md."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from speechser.io.datadir import DataDirError
from speechser.log import setup_logging
from speechser.metrics.decode_dir import aux_summary
from speechser.metrics.report import (
    add_report_options,
    cv_report,
    minority_map,
    publish_report,
    score_cv,
    with_training_record,
)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="speechser-score-ser")
    p.add_argument("--label-list", required=True)
    p.add_argument("--out-dir", required=True, help="writes scores.tsv, confusion.txt/.png, report.md, "
                   "report.html (and per_speaker.tsv with --utt2spk)")
    add_report_options(p, title="Results", tag="results")
    p.add_argument("--utt2spk", help="the utterances' speakers: adds a per-speaker table (and per_speaker.tsv)")
    p.add_argument("--majority", default="", metavar="LABELS",
                   help="the majority classes, e.g. 'ang,bor,neu' (commas or spaces): adds SAILER's minority-class mAP (the other classes' mean average "
                        "precision, from each decode directory's posteriors.tsv), per fold and pooled")
    p.add_argument("decode_dirs", nargs="+")
    a = p.parse_args(argv)
    setup_logging()
    try:
        folds, labels, speakers = score_cv(a.decode_dirs, a.label_list, a.out_dir, a.utt2spk)
        majority = a.majority.replace(",", " ").split()
        min_map = minority_map(a.decode_dirs, labels, majority) if majority else None
    except DataDirError as err:
        print(f"speechser-score-ser: error: {err}", file=sys.stderr)
        return 1
    if min_map is not None:
        with open(f"{a.out_dir}/min_map.tsv", "w", encoding="utf-8") as f:
            f.write("fold\tmin_map\n" + "".join(f"{r.name}\t{v:.5f}\n" for r, v in zip(folds, min_map[0]))
                    + f"pooled\t{min_map[1]:.5f}\n")
    report = cv_report(folds, labels, a.title, a.command, a.notes, speakers, min_map)
    report = with_training_record(report, a.decode_dirs, a.train_command) + aux_summary(a.decode_dirs)
    with open(f"{a.out_dir}/report.md", "w", encoding="utf-8") as f:
        f.write(report)
    from speechser.metrics.html_report import ser_report_html

    ser_report_html(folds, labels, a.title, a.command, a.notes, speakers, a.out_dir, a.decode_dirs)
    publish_report(report, a)
    return 0


if __name__ == "__main__":
    import sys as _sys

    _sys.exit(main())
