"""speechser-infer-ser: posteriors and hypotheses of a trained SER model on a data directory."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from speechser.config import ConfigError
from speechser.io.datadir import DataDirError
from speechser.log import log_command_line, setup_logging


def main(argv: Optional[Sequence[str]] = None) -> int:
    from speechser.train.checkpoint import CheckpointError  # a damaged model file: named, no traceback

    p = argparse.ArgumentParser(prog="speechser-infer-ser")
    p.add_argument("--exp-dir", required=True, help="reads its config.yaml")
    p.add_argument("--checkpoint", help="weights file, e.g. exp/x/valid.ua.ave_5best.pt (default: the experiment's "
                   "averaged model, else its best)")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--out-dir", required=True, help="writes posteriors.tsv, hyp, ref, scores.json")
    p.add_argument("--device", default="auto")
    a = p.parse_args(argv)
    from speechser.tasks.ser import infer_ser

    setup_logging()
    log_command_line()
    try:
        infer_ser(a.exp_dir, a.checkpoint, a.data_dir, a.out_dir, a.device)
    except (DataDirError, CheckpointError, ConfigError) as err:
        print(f"speechser-infer-ser: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    import sys as _sys

    _sys.exit(main())
