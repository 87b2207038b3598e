"""speechser-infer: label any audio with a packed model: wav files, folders, lists of files or a Kaldi
wav.scp, no labels needed; writes results.tsv, results.jsonl, utt2emo (text for joint models) and the
inputs skipped, with the reason of each."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional, Sequence

from speechser.config import ConfigError
from speechser.io.datadir import DataDirError
from speechser.log import log_command_line, setup_logging


def main(argv: Optional[Sequence[str]] = None) -> int:
    from speechser.pack.api import OUTPUT_NAMES, Speech2TextEmotion, write_outputs, write_skipped
    from speechser.pack.archive import PackError
    from speechser.pack.inputs import SPEAKER_RULES, NothingToLabel, check_out_dir, collect_inputs

    p = argparse.ArgumentParser(prog="speechser-infer", description=__doc__)
    p.add_argument("inputs", nargs="+", help="audio files, folders (searched recursively), list files (one path "
                   "per line) or a Kaldi wav.scp (name ending in .scp; an utt2spk beside it gives the speakers)")
    p.add_argument("--model", required=True, help="a packed model (speechser-pack), e.g. packed.tar")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--format", choices=("tsv", "jsonl", "both"), default="both")
    p.add_argument("--speakers", choices=SPEAKER_RULES, default="dir", help="the speaker of each recording, for "
                   "models normalized per speaker: dir = its folder, each = itself, one = all inputs "
                   "(default: %(default)s)")
    p.add_argument("--max-seconds", type=float, default=30.0, help="longer recordings are cut into equal "
                   "segments of at most this length (default: %(default)s)")
    p.add_argument("--allow-commands", action="store_true", help="run the commands of a wav.scp (values ending "
                   "in '|'; each once). Without it such a line is refused: only give it for lists you trust")
    p.add_argument("--device", default="auto")
    a = p.parse_args(argv)
    setup_logging()
    log_command_line()
    try:
        found = collect_inputs(a.inputs, a.speakers, a.allow_commands)
        check_out_dir(found, a.out_dir, OUTPUT_NAMES)
        model = Speech2TextEmotion.from_packed(a.model, a.device)
        run = model.infer(found, a.speakers, a.max_seconds, allow_commands=a.allow_commands)
        formats = ("tsv", "jsonl") if a.format == "both" else (a.format,)
        written = write_outputs(run, a.out_dir, formats)
    except NothingToLabel as err:
        where = write_skipped(err.skipped, a.out_dir)
        print(f"speechser-infer: error: none of the {len(err.skipped)} input(s) could be labelled; each is listed "
              f"with its reason in {where}", file=sys.stderr)
        return 1
    except (PackError, DataDirError, ConfigError, ValueError, OSError) as err:
        print(f"speechser-infer: error: {err}", file=sys.stderr)
        return 1
    logging.info("labelled %d utterance(s), skipped %d (listed in %s); results in %s", len(run.items),
                 len(run.skipped), written["skipped"], a.out_dir)
    if run.skipped:
        print(f"speechser-infer: skipped {len(run.skipped)} input(s), listed with the reasons in "
              f"{written['skipped']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
