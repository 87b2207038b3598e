#!/usr/bin/env bash
# Copy a subset of a data directory (Kaldi's options): [--first|--last|--shortest|--per-spk] <src> <N> <dst>,
# --utt-list FILE or --spk-list FILE <src> <dst>. <dst> may not be <src> or nested with it; an existing <dst>
# ends up with exactly the files derived from <src> (stale ones such as an old feats.scp are removed, logged).
# Implemented in speechser (speechser.bin.data_tools:subset_main); run with --help for usage.
root=$(cd -P "$(dirname "$0")/.." && pwd)
py=python3
[ -x "${root}/.venv/bin/python" ] && py="${root}/.venv/bin/python"
exec "${py}" -c 'import sys; from speechser.bin.data_tools import subset_main as m; sys.exit(m())' "$@"
