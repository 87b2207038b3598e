"""speechser-compute-fbank: log-Mel filterbanks of (a split of) a data directory into ark/scp."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from speechser.features.extract import extract_fbank
from speechser.features.fbank import FbankOptions
from speechser.io.audio import AudioError
from speechser.io.datadir import DataDirError, read_kv
from speechser.log import log_command_line, setup_logging


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="speechser-compute-fbank", description=extract_fbank.__doc__)
    p.add_argument("data_dir")
    p.add_argument("out_prefix", help="writes <prefix>.ark, <prefix>.scp, <prefix>.num_frames and the settings "
                   "<prefix>.fbank.json (read back by on-the-fly augmented training)")
    p.add_argument("--utt-list", help="only these utterances (first field of each line), e.g. a split")
    p.add_argument("--num-mel-bins", type=int, default=128)
    p.add_argument("--frame-length-ms", type=float, default=25.0)
    p.add_argument("--frame-shift-ms", type=float, default=10.0)
    p.add_argument("--sample-rate", type=int, default=16000)
    a = p.parse_args(argv)
    setup_logging()
    log_command_line()
    keys = list(read_kv(a.utt_list)) if a.utt_list else None
    try:
        opts = FbankOptions(a.num_mel_bins, a.frame_length_ms, a.frame_shift_ms, a.sample_rate)
        extract_fbank(a.data_dir, a.out_prefix, keys, opts)
    except (AudioError, DataDirError, ValueError) as err:
        print(f"speechser-compute-fbank: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    import sys as _sys

    _sys.exit(main())
