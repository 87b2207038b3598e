"""speechser-knn-ser: k-NN interpolated decoding of a trained SER model (datastore: train + valid;
beta, k and temperature tuned on valid only)."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from speechser.config import ConfigError
from speechser.io.datadir import DataDirError
from speechser.log import log_command_line, setup_logging


def main(argv: Optional[Sequence[str]] = None) -> int:
    from speechser.train.checkpoint import CheckpointError  # a damaged model file: named, no traceback

    p = argparse.ArgumentParser(prog="speechser-knn-ser", description=__doc__)
    p.add_argument("--exp-dir", required=True, help="reads its config.yaml")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--train-dir", required=True)
    p.add_argument("--valid-dir", required=True)
    p.add_argument("--test-dir", action="append", default=[], help="repeatable")
    p.add_argument("--out-dir", required=True, help="knn_params.json, knn_grid.tsv, <test>/...")
    p.add_argument("--backend", default="torch", choices=["torch", "faiss"])
    p.add_argument("--device", default="auto")
    a = p.parse_args(argv)
    from speechser.knn.decode_ser import knn_decode_ser

    setup_logging()
    log_command_line()
    try:
        knn_decode_ser(a.exp_dir, a.checkpoint, a.train_dir, a.valid_dir, a.test_dir, a.out_dir, a.backend, a.device)
    except (DataDirError, CheckpointError, ConfigError) as err:
        print(f"speechser-knn-ser: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
