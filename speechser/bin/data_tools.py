"""Entry points of the Kaldi-style data-directory tools (``utils/*.sh`` call these)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from speechser.data.labels import read_label_list
from speechser.io import datadir as dd
from speechser.log import setup_logging


def _run(fn: Callable[[argparse.Namespace], int], parser: argparse.ArgumentParser,
         argv: Optional[Sequence[str]]) -> int:
    args = parser.parse_args(argv)
    setup_logging()
    try:
        return fn(args)
    except (dd.DataDirError, ValueError, OSError) as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 1


def validate_main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="validate_data_dir.sh", description=dd.validate_data_dir.__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data_dir")
    p.add_argument("--no-wav", action="store_true", help="audio is not required (features only)")
    p.add_argument("--require-text", action="store_true")
    p.add_argument("--labels", action="append", default=[], metavar="FILE=LIST",
                   help="check FILE's labels against a label list, e.g. utt2emo=data/emotions.txt")

    def run(a: argparse.Namespace) -> int:
        label_files = {}
        for spec in a.labels:
            name, _, lst = spec.partition("=")
            label_files[name] = read_label_list(lst)
        n = dd.validate_data_dir(a.data_dir, require_audio=not a.no_wav, require_text=a.require_text,
                                 label_files=label_files)
        print(f"validate_data_dir.sh: {a.data_dir}: OK ({n} utterances)")
        return 0

    return _run(run, p, argv)


def fix_main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="fix_data_dir.sh", description=dd.fix_data_dir.__doc__)
    p.add_argument("data_dir")

    def run(a: argparse.Namespace) -> int:
        kept, dropped = dd.fix_data_dir(a.data_dir)
        print(f"fix_data_dir.sh: {a.data_dir}: kept {kept} utterances, dropped {dropped}")
        return 0

    return _run(run, p, argv)


def _read_list(path: str) -> List[str]:
    with open(path, encoding="utf-8") as f:
        return [ln.split()[0] for ln in f if ln.strip()]


def subset_main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="subset_data_dir.sh", description=dd.subset_data_dir.__doc__)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--utt-list", help="file whose first field is an utterance id")
    g.add_argument("--spk-list", help="file whose first field is a speaker id")
    g.add_argument("--first", type=int, help="the first N utterances")
    p.add_argument("src")
    p.add_argument("dst")

    def run(a: argparse.Namespace) -> int:
        n = dd.subset_data_dir(
            a.src, a.dst,
            utt_list=_read_list(a.utt_list) if a.utt_list else None,
            spk_list=_read_list(a.spk_list) if a.spk_list else None,
            first=a.first,
        )
        print(f"subset_data_dir.sh: wrote {n} utterances to {a.dst}")
        return 0

    return _run(run, p, argv)


def copy_main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="copy_data_dir.sh", description=dd.copy_data_dir.__doc__)
    for opt in ("--utt-prefix", "--utt-suffix", "--spk-prefix", "--spk-suffix"):
        p.add_argument(opt, default="")
    p.add_argument("src")
    p.add_argument("dst")

    def run(a: argparse.Namespace) -> int:
        n = dd.copy_data_dir(a.src, a.dst, a.utt_prefix, a.utt_suffix, a.spk_prefix, a.spk_suffix)
        print(f"copy_data_dir.sh: copied {n} utterances to {a.dst}")
        return 0

    return _run(run, p, argv)


def combine_main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="combine_data.sh", description=dd.combine_data.__doc__)
    p.add_argument("dst")
    p.add_argument("srcs", nargs="+")

    def run(a: argparse.Namespace) -> int:
        n = dd.combine_data(a.dst, a.srcs)
        print(f"combine_data.sh: wrote {n} utterances to {a.dst}")
        return 0

    return _run(run, p, argv)


def split_scp_main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="split_scp", description=dd.split_scp.__doc__)
    p.add_argument("--utt2spk", help="keep each speaker's utterances in one piece")
    p.add_argument("scp")
    p.add_argument("outputs", nargs="+")

    def run(a: argparse.Namespace) -> int:
        dd.split_scp(a.scp, a.outputs, a.utt2spk)
        return 0

    return _run(run, p, argv)


def filter_scp_main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="filter_scp", description=dd.filter_scp.__doc__)
    p.add_argument("--exclude", action="store_true")
    p.add_argument("-f", "--field", type=int, default=1)
    p.add_argument("id_list")
    p.add_argument("scp")

    def run(a: argparse.Namespace) -> int:
        for line in dd.filter_scp(a.id_list, a.scp, a.field, a.exclude):
            sys.stdout.write(line + "\n")
        return 0

    return _run(run, p, argv)


def _stdin_or(path: Optional[str]) -> Path:
    return Path(path) if path and path != "-" else Path("/dev/stdin")


def utt2spk_to_spk2utt_main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="utt2spk_to_spk2utt", description="utt2spk (file or stdin) -> spk2utt on stdout")
    p.add_argument("utt2spk", nargs="?")

    def run(a: argparse.Namespace) -> int:
        for spk, utts in dd.utt2spk_to_spk2utt(dd.read_kv(_stdin_or(a.utt2spk))).items():
            sys.stdout.write(f"{spk} {' '.join(utts)}\n")
        return 0

    return _run(run, p, argv)


def spk2utt_to_utt2spk_main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="spk2utt_to_utt2spk", description="spk2utt (file or stdin) -> utt2spk on stdout")
    p.add_argument("spk2utt", nargs="?")

    def run(a: argparse.Namespace) -> int:
        for utt, spk in dd.spk2utt_to_utt2spk(dd.read_spk2utt(_stdin_or(a.spk2utt))).items():
            sys.stdout.write(f"{utt} {spk}\n")
        return 0

    return _run(run, p, argv)
