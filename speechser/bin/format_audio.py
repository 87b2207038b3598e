"""speechser-format-audio: resample a data directory's audio to one rate and drop empty/too-short utterances."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from speechser.io.audio import AudioError
from speechser.io.datadir import DataDirError
from speechser.io.format import format_data_dir
from speechser.log import log_command_line, setup_logging


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="speechser-format-audio", description=format_data_dir.__doc__)
    p.add_argument("src", help="input data directory")
    p.add_argument("dst", help="output data directory")
    p.add_argument("--audio-dir", required=True,
                   help="where the formatted WAV files go: a folder of their own (replaced as a whole), "
                        "usually <dst>/wav; never the corpus's audio")
    p.add_argument("--rate", type=int, default=16000)
    p.add_argument("--min-duration", type=float, default=0.5, help="seconds; shorter utterances are skipped")
    p.add_argument("--skip-truncated", action="store_true",
                   help="skip (logged, counted in format.log) audio files cut short, instead of stopping")
    a = p.parse_args(argv)
    setup_logging()
    log_command_line()
    try:
        report = format_data_dir(a.src, a.dst, a.audio_dir, a.rate, a.min_duration, a.skip_truncated)
    except (AudioError, DataDirError, OSError) as err:
        print(f"speechser-format-audio: error: {err}", file=sys.stderr)
        return 1
    print(f"speechser-format-audio: {a.src} -> {a.dst}: {report.summary()}")
    return 0


if __name__ == "__main__":
    import sys as _sys

    _sys.exit(main())
