"""speechser-speed-perturb: a speed-perturbed copy of a formatted data directory (prefix sp<factor>-)."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from speechser.io.audio import AudioError
from speechser.io.datadir import DataDirError
from speechser.io.format import speed_perturb_data_dir
from speechser.log import log_command_line, setup_logging


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="speechser-speed-perturb", description=speed_perturb_data_dir.__doc__)
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--audio-dir", required=True)
    p.add_argument("--factor", type=float, required=True)
    a = p.parse_args(argv)
    setup_logging()
    log_command_line()
    try:
        n = speed_perturb_data_dir(a.src, a.dst, a.audio_dir, a.factor)
    except (AudioError, DataDirError, ValueError) as err:
        print(f"speechser-speed-perturb: error: {err}", file=sys.stderr)
        return 1
    print(f"speechser-speed-perturb: {n} utterances at speed {a.factor:g} -> {a.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
