"""speechser-filter-loop: the training-loop data filter (decode the training set, keep utterances
whose WER and CTC confidence lie inside the bounds, retrain, repeat). Any loop config key can be
overridden: --bounds.wer_max 0.5"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from speechser.config import ConfigError
from speechser.io.datadir import DataDirError
from speechser.log import log_command_line, setup_logging


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="speechser-filter-loop", description=__doc__)
    p.add_argument("--config", help="YAML loop config (bounds, max_rounds, min_change, train_overrides, ...)")
    p.add_argument("--asr-exp", required=True, help="round 0: a trained ASR experiment")
    p.add_argument("--checkpoint", required=True, help="its weights file")
    p.add_argument("--train-dir", required=True, help="the full training set (feature directory)")
    p.add_argument("--valid-dir", required=True)
    p.add_argument("--test-dir", action="append", default=[], help="repeatable")
    p.add_argument("--out-dir", required=True, help="round<r>/..., rounds.tsv")
    a, overrides = p.parse_known_args(argv)
    from speechser.filter.loop import load_filter_loop_config, run_filter_loop
    from speechser.train.checkpoint import CheckpointError
    from speechser.train.experiment import ExperimentError

    setup_logging(Path(a.out_dir) / "filter_loop.log")
    log_command_line()
    start = time.time()
    try:
        conf = load_filter_loop_config(a.config, overrides)
        rows = run_filter_loop(conf, a.asr_exp, a.checkpoint, a.train_dir, a.valid_dir, a.test_dir, a.out_dir)
    except (ConfigError, DataDirError, CheckpointError, ExperimentError) as err:
        print(f"speechser-filter-loop: error: {err}", file=sys.stderr)
        return 1
    print(f"speechser-filter-loop: {len(rows) - 1} round(s) in {time.time() - start:.0f}s -> {a.out_dir}/rounds.tsv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
