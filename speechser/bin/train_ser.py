"""speechser-train-ser: train an emotion classifier from a YAML config (``--key value`` overrides)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from speechser.config import ConfigError
from speechser.io.datadir import DataDirError
from speechser.log import log_command_line, setup_training_logging
from speechser.train.checkpoint import CheckpointError
from speechser.train.experiment import ExperimentError


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="speechser-train-ser",
        description="Train an SER model. Any config key can be overridden: --optim.lr 1e-3 --data.train_dir d",
    )
    p.add_argument("--config", help="YAML config")
    p.add_argument("--exp-dir", required=True, help="experiment directory (resumes from its checkpoint.pt)")
    a, overrides = p.parse_known_args(argv)
    from speechser.tasks.ser import load_ser_config, train_ser

    try:  # the config first: a bad key or value leaves no experiment directory behind
        conf = load_ser_config(a.config, overrides)
    except ConfigError as err:
        print(f"speechser-train-ser: error: {err}", file=sys.stderr)
        return 1
    is_main = setup_training_logging(Path(a.exp_dir) / "train.log")  # under torchrun: rank 0 only
    log_command_line()
    start = time.time()
    try:
        summary = train_ser(conf, a.exp_dir)
    except (ConfigError, DataDirError, CheckpointError, ExperimentError) as err:
        print(f"speechser-train-ser: error: {err}", file=sys.stderr)
        return 1
    if is_main:
        print(f"speechser-train-ser: done in {time.time() - start:.0f}s: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
