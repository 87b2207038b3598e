"""speechser-knn-ser: k-NN interpolated decoding of a trained SER model (datastore: train + valid;
beta, k and temperature tuned on valid only, over the grid of --config, any key of which can be
overridden: --ks "[4, 8]" --betas "[0.5, 1.0]")."""

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
    p.add_argument("--checkpoint", help="weights file (default: the experiment's averaged model, else its best)")
    p.add_argument("--train-dir", required=True)
    p.add_argument("--valid-dir", required=True)
    p.add_argument("--test-dir", action="append", default=[], help="repeatable")
    p.add_argument("--out-dir", required=True, help="knn_params.json, knn_grid.tsv, <test>/...")
    p.add_argument("--config", help="YAML with betas, ks, temperatures, backend (default: the built-in grid)")
    p.add_argument("--backend", choices=["torch", "faiss"], help="overrides the config's backend")
    p.add_argument("--device", default="auto")
    a, overrides = p.parse_known_args(argv)
    from speechser.knn.decode_ser import knn_decode_ser, load_knn_config

    setup_logging()
    log_command_line()
    try:
        knn = load_knn_config(a.config, overrides + (["--backend", a.backend] if a.backend else []))
        knn_decode_ser(a.exp_dir, a.checkpoint, a.train_dir, a.valid_dir, a.test_dir, a.out_dir, knn, a.device)
    except (DataDirError, CheckpointError, ConfigError) as err:
        print(f"speechser-knn-ser: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
