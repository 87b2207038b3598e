"""speechser-compare-ser: an ablation table from several experiments' cross-validation scores.

    speechser-compare-ser --results-md RESULTS.md --tag ablation \\
        "foundation=exp/train_tdnn/loso/scores/scores.tsv" "+ fusion=exp/train_tdnn_asr_fusion/loso/scores/scores.tsv"

Each row is ``NAME=PATH`` to a ``scores.tsv`` written by ``speechser-score-ser``, or
``NAME=PATH1,PATH2,...`` for several runs of one system (training seeds): their folds are averaged and the
table shows each run's UA and the spread across runs. The first row is the reference. All rows must cover the same folds with the same test utterance counts, and no
file may be given twice.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from speechser.io.datadir import DataDirError
from speechser.metrics.compare import comparison_markdown, read_seed_scores
from speechser.metrics.decode_dir import unique_dirs
from speechser.metrics.report import add_report_options, publish_report


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="speechser-compare-ser", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_report_options(p, title="Ablation", tag="ablation")
    p.add_argument("rows", nargs="+", metavar="NAME=SCORES_TSV")
    a = p.parse_args(argv)
    rows = []
    try:
        specs = []
        for spec in a.rows:
            name, sep, path = spec.partition("=")
            if not sep or not name or not path:
                raise DataDirError(f"row '{spec}': expected NAME=PATH")
            specs.append((name, path))
        unique_dirs([p for _, path in specs for p in path.split(",")], what="scores file")
        for name, path in specs:
            rows.append(read_seed_scores(name, path.split(",")))
        report = comparison_markdown(rows, a.title, a.command, a.notes)
    except DataDirError as err:
        print(f"speechser-compare-ser: error: {err}", file=sys.stderr)
        return 1
    publish_report(report, a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
