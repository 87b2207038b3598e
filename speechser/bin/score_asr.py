"""speechser-score-asr: collect the WER/CER tables of decode directories into RESULTS.md."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from speechser.io.datadir import DataDirError
from speechser.metrics.asr import asr_report
from speechser.metrics.report import replace_section


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="speechser-score-asr")
    p.add_argument("--results-md", required=True)
    p.add_argument("--tag", default="asr")
    p.add_argument("--title", default="ASR results")
    p.add_argument("--command", default="")
    p.add_argument("--notes", default="")
    p.add_argument("--header", default="# RESULTS")
    p.add_argument("decode_dirs", nargs="+")
    a = p.parse_args(argv)
    try:
        report = asr_report(a.decode_dirs, a.title, a.command, a.notes)
    except DataDirError as err:
        print(f"speechser-score-asr: error: {err}", file=sys.stderr)
        return 1
    replace_section(a.results_md, a.tag, report, a.header)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
