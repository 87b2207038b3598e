"""speechser-compute-ssl: a frozen pretrained encoder's hidden states (pooled per utterance, or frame by
frame) of (a split of) a data directory into ark/scp."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from speechser.features.ssl_feats import LEVELS, SSLFeatureOptions
from speechser.nets.ssl_frontend import extract_ssl
from speechser.io.audio import AudioError
from speechser.io.datadir import DataDirError, read_kv
from speechser.log import log_command_line, setup_logging
from speechser.nets.whisper_encoder import WINDOWS


def _layers(text: str) -> list:
    """``"1-4"``, ``"3"``, ``"0,2,5"`` or ``"all"`` -> hidden-state indices (empty: all)."""
    if text in ("", "all"):
        return []
    out = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="speechser-compute-ssl", description=extract_ssl.__doc__)
    p.add_argument("data_dir")
    p.add_argument("out_prefix", help="writes <prefix>.ark, <prefix>.scp, <prefix>.num_frames and the settings "
                   "<prefix>.ssl.json")
    p.add_argument("--utt-list", help="only these utterances (first field of each line), e.g. a split")
    p.add_argument("--model", required=True, help="the encoder: a hub name or a local directory")
    p.add_argument("--layers", default="all", help="hidden states: all, 3, 1-4 or 0,2,5 (default: %(default)s)")
    p.add_argument("--level", default="functionals", choices=LEVELS)
    p.add_argument("--window", default="utterance", choices=WINDOWS, help="Whisper: the utterance's own length "
                   "or the 30-s window (default: %(default)s)")
    p.add_argument("--num-threads", type=int, default=0, help="torch threads (0: torch's default)")
    a = p.parse_args(argv)
    setup_logging()
    log_command_line()
    keys = list(read_kv(a.utt_list)) if a.utt_list else None
    try:
        if a.num_threads > 0:
            import torch

            torch.set_num_threads(a.num_threads)
        extract_ssl(a.data_dir, a.out_prefix, keys, SSLFeatureOptions(a.model, _layers(a.layers), a.level, a.window))
    except (AudioError, DataDirError, ValueError, OSError) as err:
        print(f"speechser-compute-ssl: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
