"""speechser-compute-cmvn: global or per-speaker CMVN statistics of a data directory's features."""

from __future__ import annotations

import argparse
from typing import Optional, Sequence

import sys

from speechser.features.extract import write_cmvn
from speechser.io.datadir import DataDirError
from speechser.log import log_command_line, setup_logging


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="speechser-compute-cmvn", description=write_cmvn.__doc__)
    p.add_argument("data_dir")
    p.add_argument("--per-speaker", action="store_true", help="one statistics matrix per speaker (cmvn.scp)")
    p.add_argument("--out", help="global statistics file (default <data_dir>/cmvn.ark)")
    a = p.parse_args(argv)
    setup_logging()
    log_command_line()
    try:
        path = write_cmvn(a.data_dir, a.per_speaker, a.out)
    except DataDirError as err:
        print(f"speechser-compute-cmvn: error: {err}", file=sys.stderr)
        return 1
    print(f"speechser-compute-cmvn: wrote {path}")
    return 0


if __name__ == "__main__":
    import sys as _sys

    _sys.exit(main())
