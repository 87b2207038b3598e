"""speechser-report-filter-rounds: the data filter loop's rounds.tsv as a RESULTS.md section
(environment, command, wall time, and the per-round table of kept/removed utterances and WER)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

EXPLANATION = ("Round 0 is the model above; each later round decodes the whole training set with the previous\n"
               "round's model, keeps the utterances inside the bounds and retrains (CTC greedy WER, %).")


def main(argv: Optional[Sequence[str]] = None) -> int:
    from speechser.metrics.report import add_report_options

    p = argparse.ArgumentParser(prog="speechser-report-filter-rounds", description=__doc__)
    p.add_argument("rounds", help="rounds.tsv written by speechser-filter-loop")
    p.add_argument("--wall-time", default="", help="seconds the loop took (left out of the report when empty)")
    add_report_options(p, title="data filter loop", tag="filter-rounds")
    a = p.parse_args(argv)
    from speechser.filter.loop import rounds_markdown
    from speechser.metrics.report import environment_line, publish_report

    if not Path(a.rounds).is_file():
        print(f"speechser-report-filter-rounds: error: {a.rounds}: no such file", file=sys.stderr)
        return 1
    lines = [f"## {a.title}", "", f"- environment: {environment_line()}"]
    if a.command:
        lines.append(f"- command: `{a.command}`")
    if a.wall_time:
        lines.append(f"- wall time {a.wall_time} s")
    if a.notes:
        lines.append(f"- {a.notes}")
    try:
        table = rounds_markdown(a.rounds)
    except (IndexError, ValueError) as err:
        print(f"speechser-report-filter-rounds: error: {a.rounds}: not a rounds table ({err})", file=sys.stderr)
        return 1
    publish_report("\n".join(lines + ["", EXPLANATION, "", table]), a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
