"""speechser-train-asr: train an ASR model (Conformer CTC + RNN-T) from a YAML config (``--key value`` overrides)."""

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
    p = argparse.ArgumentParser(prog="speechser-train-asr",
                                description="Train an ASR model. Any config key can be overridden: --optim.lr 1e-3")
    p.add_argument("--config", help="YAML config")
    p.add_argument("--exp-dir", required=True, help="experiment directory (resumes from its checkpoint.pt)")
    a, overrides = p.parse_known_args(argv)
    from speechser.tasks.asr import load_asr_config, train_asr

    try:  # the config first: a bad key or value leaves no experiment directory behind
        conf = load_asr_config(a.config, overrides)
    except ConfigError as err:
        print(f"speechser-train-asr: error: {err}", file=sys.stderr)
        return 1
    is_main = setup_training_logging(Path(a.exp_dir) / "train.log")  # under torchrun: rank 0 only
    log_command_line()
    start = time.time()
    try:
        summary = train_asr(conf, a.exp_dir)
    except (ConfigError, DataDirError, CheckpointError, ExperimentError) as err:
        print(f"speechser-train-asr: error: {err}", file=sys.stderr)
        return 1
    if is_main:
        print(f"speechser-train-asr: done in {time.time() - start:.0f}s: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
