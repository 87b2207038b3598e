"""speechser-compute-opensmile: openSMILE functionals or low-level descriptors of (a split of) a data
directory into ark/scp."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from speechser.features.opensmile_feats import FEATURE_SETS, LEVELS, OpenSmileOptions, extract_opensmile
from speechser.io.audio import AudioError
from speechser.io.datadir import DataDirError, read_kv
from speechser.log import log_command_line, setup_logging


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="speechser-compute-opensmile", description=extract_opensmile.__doc__)
    p.add_argument("data_dir")
    p.add_argument("out_prefix", help="writes <prefix>.ark, <prefix>.scp, <prefix>.num_frames and the settings "
                   "<prefix>.opensmile.json")
    p.add_argument("--utt-list", help="only these utterances (first field of each line), e.g. a split")
    p.add_argument("--feature-set", default="eGeMAPSv02", choices=FEATURE_SETS)
    p.add_argument("--level", default="functionals", choices=LEVELS)
    p.add_argument("--sample-rate", type=int, default=16000)
    p.add_argument("--max-clipped-fraction", type=float, default=OpenSmileOptions.max_clipped_fraction,
                   help="skip (log, count, list in <prefix>.skipped) an utterance with more of its samples "
                   "at full scale (default: %(default)s)")
    a = p.parse_args(argv)
    setup_logging()
    log_command_line()
    keys = list(read_kv(a.utt_list)) if a.utt_list else None
    try:
        extract_opensmile(a.data_dir, a.out_prefix, keys,
                          OpenSmileOptions(a.feature_set, a.level, a.sample_rate, a.max_clipped_fraction))
    except (AudioError, DataDirError, ValueError) as err:
        print(f"speechser-compute-opensmile: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
