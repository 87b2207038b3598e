"""speechser-decode-asr: hypotheses, CTC confidences and WER/CER of a trained ASR model on a data directory."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from speechser.config import ConfigError
from speechser.io.datadir import DataDirError
from speechser.log import log_command_line, setup_logging


def main(argv: Optional[Sequence[str]] = None) -> int:
    from speechser.tasks.asr import DECODERS, decode_asr, model_decoders, read_asr_experiment_config
    from speechser.train.checkpoint import CheckpointError  # a damaged model file: named, no traceback

    p = argparse.ArgumentParser(prog="speechser-decode-asr", description=decode_asr.__doc__)
    p.add_argument("--exp-dir", required=True, help="reads its config.yaml")
    p.add_argument("--list-decoders", action="store_true", help="print the decoders the experiment's model can "
                   "run (from its branches: CTC, RNN-T), one line, and exit")
    p.add_argument("--checkpoint")
    p.add_argument("--data-dir")
    p.add_argument("--out-dir")
    p.add_argument("--decoder", choices=DECODERS, default="ctc_greedy")
    p.add_argument("--beam", type=int, default=10)
    p.add_argument("--device", default="auto")
    a = p.parse_args(argv)
    if a.list_decoders:
        try:
            print(" ".join(model_decoders(read_asr_experiment_config(a.exp_dir).model)))
        except (ConfigError, OSError) as err:
            print(f"speechser-decode-asr: error: {err}", file=sys.stderr)
            return 1
        return 0
    missing = [f"--{n.replace('_', '-')}" for n in ("checkpoint", "data_dir", "out_dir") if not getattr(a, n)]
    if missing:
        p.error(f"the following arguments are required: {', '.join(missing)}")
    setup_logging()
    log_command_line()
    try:
        decode_asr(a.exp_dir, a.checkpoint, a.data_dir, a.out_dir, a.decoder, a.beam, a.device)
    except (DataDirError, CheckpointError, ConfigError) as err:
        print(f"speechser-decode-asr: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
