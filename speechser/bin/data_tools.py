"""Entry points of the Kaldi-style data-directory tools (``utils/*.sh`` call these)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from speechser.data.labels import read_label_list
from speechser.io import datadir as dd
from speechser.io.lengths import utterance_lengths
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


def _dashed(tok: str) -> str:
    """``--utt_extra_files[=V]`` -> ``--utt-extra-files[=V]``: Kaldi's parse_options.sh takes
    either spelling of an option name (the value is left as it is)."""
    if not tok.startswith("--") or tok == "--":
        return tok
    name, eq, value = tok.partition("=")
    return name.replace("_", "-") + eq + value


def _fuse_values(argv: Optional[Sequence[str]], options: Sequence[str]) -> Optional[List[str]]:
    """Join ``--opt VALUE`` into ``--opt=VALUE`` for string options whose value may
    start with a dash (Kaldi recipes write ``--validate-opts "--no-wav"``, ``--utt-suffix -x``);
    option names may be spelled with ``_`` or ``-`` as in Kaldi. After ``--`` nothing is touched."""
    if argv is None:
        argv = sys.argv[1:]
    out: List[str] = []
    it = iter(argv)
    for tok in it:
        if tok == "--":
            out.append(tok)
            out.extend(it)
            break
        tok = _dashed(tok)
        if tok in options:
            value = next(it, None)
            out.append(tok if value is None else f"{tok}={value}")
        else:
            out.append(tok)
    return out


def _validate_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="validate_data_dir.sh",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Check a Kaldi data directory, with the options and defaults of Kaldi's utils/validate_data_dir.sh.\n"
            "By default text, wav.scp and feats.scp are required, utt2spk must be sorted by speaker as well as\n"
            "by utterance, and text may hold no non-printing (control) characters. A file that is not required\n"
            "is still checked when present. Checks: every file is well formed, its keys unique and sorted in\n"
            "the C locale; the per-utterance files share utt2spk's keys; spk2utt is the inverse of utt2spk;\n"
            "wav.scp covers the utterances (or the recordings of segments); segment times are sane; labels\n"
            "are in their list (--labels). The first problem is an error naming file and line."
        ),
    )
    p.add_argument("data_dir")
    p.add_argument("--no-feats", action="store_true", help="do not require feats.scp (checked if present)")
    p.add_argument("--no-text", action="store_true", help="do not require text (checked if present)")
    p.add_argument("--no-wav", action="store_true", help="do not require wav.scp (checked if present)")
    p.add_argument("--non-print", action="store_true", help="allow non-printing characters in text")
    p.add_argument("--no-spk-sort", action="store_true",
                   help="do not require utt2spk (sorted by utterance) to be sorted by speaker as well")
    p.add_argument("--require-text", action="store_true",
                   help="deprecated, does nothing: text is required unless --no-text")
    p.add_argument("--labels", action="append", default=[], metavar="FILE=LIST",
                   help="check FILE's labels against a label list, e.g. utt2emo=data/emotions.txt")
    return p


def _validate(a: argparse.Namespace) -> int:
    label_files = {}
    for spec in a.labels:
        name, _, lst = spec.partition("=")
        label_files[name] = read_label_list(lst)
    return dd.validate_data_dir(
        a.data_dir,
        require_audio=not a.no_wav,
        require_text=not a.no_text,
        label_files=label_files,
        require_wav=not a.no_wav,
        require_feats=not a.no_feats,
        require_spk_sort=not a.no_spk_sort,
        allow_non_print=a.non_print,
    )


def validate_main(argv: Optional[Sequence[str]] = None) -> int:
    p = _validate_parser()

    def run(a: argparse.Namespace) -> int:
        n = _validate(a)
        print(f"validate_data_dir.sh: {a.data_dir}: OK ({n} utterances)")
        return 0

    return _run(run, p, _fuse_values(argv, ()))


def _file_names(spec: str) -> List[str]:
    """Kaldi's list options are one argument of space-separated names: --extra-files 'utt2lang utt2age'."""
    return spec.split()


def fix_main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="fix_data_dir.sh", description=dd.fix_data_dir.__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Option names may be spelled with '_' or '-' (--utt_extra_files), as in Kaldi.")
    p.add_argument("data_dir")
    p.add_argument("--utt-extra-files", default="", metavar="'FILE ...'",
                   help="further files keyed by utterance to sort and filter, e.g. 'utt2lang utt2age'")
    p.add_argument("--spk-extra-files", default="", metavar="'FILE ...'",
                   help="further files keyed by speaker to sort and filter, e.g. 'spk2age'")

    def run(a: argparse.Namespace) -> int:
        kept, dropped = dd.fix_data_dir(a.data_dir, _file_names(a.utt_extra_files),
                                        _file_names(a.spk_extra_files))
        print(f"fix_data_dir.sh: {a.data_dir}: kept {kept} utterances, dropped {dropped}")
        return 0

    return _run(run, p, _fuse_values(argv, ("--utt-extra-files", "--spk-extra-files")))


def _read_list(path: str) -> List[str]:
    with open(path, encoding="utf-8") as f:
        return [ln.split()[0] for ln in f if ln.strip()]


_SUBSET_COUNTS = ("first", "last", "shortest", "per_spk")
_SUBSET_USAGE = """subset_data_dir.sh [--first|--last|--shortest|--per-spk] <srcdir> <num> <destdir>
       subset_data_dir.sh --first|--last|--shortest|--per-spk <num> <srcdir> <destdir>
       subset_data_dir.sh --utt-list <file> <srcdir> <destdir>
       subset_data_dir.sh --spk-list <file> <srcdir> <destdir>"""
_SUBSET_HELP = """Copy a subset of a data directory (Kaldi's utils/subset_data_dir.sh). Selection:
  <srcdir> <num> <destdir>   <num> utterances spread evenly over the sorted utterance list
                             (deterministic, as Kaldi's subset_scp.pl picks them; not random)
  --first / --last           the first / last <num> utterances in sorted order
  --shortest                 the <num> shortest utterances, measured by utt2dur, else utt2num_frames,
                             else segments, else the frames of feats.scp, else the audio of wav.scp
  --per-spk                  up to <num> utterances of each speaker, spread evenly over its utterances
  --utt-list FILE            the utterances named in FILE's first column
  --spk-list FILE            all utterances of the speakers named in FILE's first column
As in Kaldi, --first, --last, --shortest and --per-spk are switches before <srcdir> <num> <destdir>;
they may also take <num> directly (--first 100 <srcdir> <destdir>). Asking for more utterances than
<srcdir> has is an error (except with --per-spk)."""


def _is_count(tok: str) -> bool:
    return tok.isdigit() or (tok.startswith("-") and tok[1:].isdigit())


def subset_main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="subset_data_dir.sh", usage=_SUBSET_USAGE, description=_SUBSET_HELP,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--utt-list", metavar="FILE", help="file whose first field is an utterance id")
    g.add_argument("--spk-list", metavar="FILE", help="file whose first field is a speaker id")
    flag = object()
    for name in _SUBSET_COUNTS:
        g.add_argument(f"--{name.replace('_', '-')}", nargs="?", const=flag, metavar="N")
    p.add_argument("paths", nargs="*", metavar="<srcdir> [<num>] <destdir>")

    def parse() -> argparse.Namespace:
        a = p.parse_intermixed_args(_fuse_values(argv, ()))
        mode = next((m for m in _SUBSET_COUNTS if getattr(a, m) is not None), None)
        paths = list(a.paths)
        num: Optional[str] = None
        if mode is not None:
            value = getattr(a, mode)
            if value is not flag and not (_is_count(value) and not Path(value).is_dir()):
                paths.insert(0, value)  # Kaldi's form: the switch took <srcdir>
                value = flag
            if value is flag:
                if len(paths) != 3:
                    p.error(f"--{mode.replace('_', '-')} needs <srcdir> <num> <destdir> (or <num> <srcdir> <destdir>)")
                num = paths.pop(1)
            else:
                num = value
                if len(paths) != 2:
                    p.error("expected <srcdir> <destdir> after the options")
        elif a.utt_list is not None or a.spk_list is not None:
            if len(paths) != 2:
                p.error("expected <srcdir> <destdir>")
        elif len(paths) == 3:
            mode, num = "evenly", paths.pop(1)
        else:
            p.error("expected <srcdir> <num> <destdir>, or a selection option with <srcdir> <destdir>")
        if num is not None and not _is_count(num):
            p.error(f"<num> must be a whole number, got '{num}'")
        a.mode, a.num, (a.src, a.dst) = mode, None if num is None else int(num), paths
        return a

    def run(a: argparse.Namespace) -> int:
        counts = {a.mode: a.num} if a.mode is not None else {}
        if a.mode == "shortest":
            lengths, source = utterance_lengths(a.src)
            print(f"subset_data_dir.sh: --shortest measures utterances by {a.src}/{source}")
            counts["lengths"] = lengths
        n = dd.subset_data_dir(
            a.src, a.dst,
            utt_list=_read_list(a.utt_list) if a.utt_list else None,
            spk_list=_read_list(a.spk_list) if a.spk_list else None,
            **counts,
        )
        print(f"subset_data_dir.sh: wrote {n} utterances to {a.dst}")
        return 0

    setup_logging()
    a = parse()
    try:
        return run(a)
    except (dd.DataDirError, ValueError, OSError) as err:
        print(f"{p.prog}: error: {err}", file=sys.stderr)
        return 1


def copy_main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="copy_data_dir.sh", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Copy a data directory, optionally renaming utterances (--utt-prefix/--utt-suffix) and\n"
            "speakers (--spk-prefix/--spk-suffix), then validate the copy (Kaldi's utils/copy_data_dir.sh):\n"
            "--no-feats and --no-text are added when the source lacks feats.scp or text, and\n"
            "--validate-opts adds more (e.g. --validate-opts '--no-wav').\n\n" + (dd.copy_data_dir.__doc__ or "")
        ),
    )
    p.add_argument("--utt-prefix", default="", help="prefix for utterance ids")
    p.add_argument("--utt-suffix", default="", help="suffix for utterance ids")
    p.add_argument("--spk-prefix", default="", help="prefix for speaker ids")
    p.add_argument("--spk-suffix", default="", help="suffix for speaker ids")
    p.add_argument("--validate-opts", default="", metavar="'OPTS'",
                   help="options for validate_data_dir.sh on the copy (rarely needed)")
    p.add_argument("src")
    p.add_argument("dst")

    def run(a: argparse.Namespace) -> int:
        try:
            v, unknown = _validate_parser().parse_known_args([*shlex.split(a.validate_opts), "--", a.dst])
        except (ValueError, SystemExit):
            unknown = [a.validate_opts]
        if unknown:
            raise ValueError(f"--validate-opts '{a.validate_opts}': not options of validate_data_dir.sh "
                             f"(see validate_data_dir.sh --help)")
        src = Path(a.src)
        n = dd.copy_data_dir(a.src, a.dst, a.utt_prefix, a.utt_suffix, a.spk_prefix, a.spk_suffix)
        print(f"copy_data_dir.sh: copied {n} utterances to {a.dst}")
        v.no_feats = v.no_feats or not (src / "feats.scp").is_file()
        v.no_text = v.no_text or not (src / "text").is_file()
        _validate(v)
        return 0

    opts = ("--utt-prefix", "--utt-suffix", "--spk-prefix", "--spk-suffix", "--validate-opts")
    return _run(run, p, _fuse_values(argv, opts))


def combine_main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="combine_data.sh", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Combine data directories into <dst> (Kaldi's utils/combine_data.sh), then run\n"
            "fix_data_dir.sh on it unless --skip-fix.\n\n" + (dd.combine_data.__doc__ or "")
        ),
    )
    p.add_argument("--extra-files", default="", metavar="'FILE ...'",
                   help="further files to combine, e.g. 'utt2lang utt2age'")
    p.add_argument("--skip-fix", action="store_true", help="do not run fix_data_dir.sh on the result")
    p.add_argument("dst")
    p.add_argument("srcs", nargs="+")

    def run(a: argparse.Namespace) -> int:
        n = dd.combine_data(a.dst, a.srcs, extra_files=_file_names(a.extra_files))
        print(f"combine_data.sh: wrote {n} utterances to {a.dst}")
        if not a.skip_fix:
            kept, dropped = dd.fix_data_dir(a.dst)
            if dropped:
                print(f"combine_data.sh: fix_data_dir.sh kept {kept} utterances, dropped {dropped}")
        return 0

    return _run(run, p, _fuse_values(argv, ("--extra-files",)))


def split_scp_main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="split_scp", description=dd.split_scp.__doc__)
    p.add_argument("--utt2spk", help="keep each speaker's utterances in one piece")
    p.add_argument("scp")
    p.add_argument("outputs", nargs="+")

    def run(a: argparse.Namespace) -> int:
        dd.split_scp(a.scp, a.outputs, a.utt2spk)
        return 0

    return _run(run, p, _fuse_values(argv, ()))


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
