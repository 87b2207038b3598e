"""speechser-score-asr: collect the WER/CER tables of decode directories into RESULTS.md."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from speechser.io.datadir import DataDirError
from speechser.metrics.report import asr_report
from speechser.metrics.report import add_report_options, publish_report, with_training_record


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="speechser-score-asr")
    add_report_options(p, title="ASR results", tag="asr", results_md_required=True)
    p.add_argument("--allow-missing", action="store_true",
                   help="report decodes that did not score every utterance of their set (noted in the report) "
                        "instead of refusing them")
    p.add_argument("--html", default="", help="the HTML page to write (default: <experiment>/report.html when "
                   "every decode directory is in one experiment)")
    p.add_argument("decode_dirs", nargs="+")
    a = p.parse_args(argv)
    try:
        report = asr_report(a.decode_dirs, a.title, a.command, a.notes, allow_missing=a.allow_missing)
        report = with_training_record(report, a.decode_dirs, a.train_command)
    except DataDirError as err:
        print(f"speechser-score-asr: error: {err}", file=sys.stderr)
        return 1
    publish_report(report, a)
    from speechser.metrics.html_report import asr_report_html

    asr_report_html(a.decode_dirs, a.title, a.command, a.notes, a.html or None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
