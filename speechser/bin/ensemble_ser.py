"""speechser-ensemble-ser: a voting (or posterior-mean) ensemble of SER decode directories."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from speechser.io.datadir import DataDirError
from speechser.log import log_command_line, setup_logging


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="speechser-ensemble-ser", description=__doc__)
    p.add_argument("decode_dirs", nargs="+", help="decode directories with posteriors.tsv and ref")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--method", default="vote", choices=["vote", "mean"])
    a = p.parse_args(argv)
    from speechser.combine.ensemble import ensemble_decodes

    setup_logging()
    log_command_line()
    try:
        ensemble_decodes(a.decode_dirs, a.out_dir, a.method)
    except DataDirError as err:
        print(f"speechser-ensemble-ser: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
