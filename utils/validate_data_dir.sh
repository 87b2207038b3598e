#!/usr/bin/env bash
# Check a Kaldi data directory: sorted files, one key set, spk2utt = inverse of utt2spk, audio, labels.
# Kaldi's options: [--no-feats] [--no-text] [--no-wav] [--non-print] [--no-spk-sort] <data-dir>.
# Implemented in speechser (speechser.bin.data_tools:validate_main); run with --help for usage.
root=$(cd -P "$(dirname "$0")/.." && pwd)
py=python3
[ -x "${root}/.venv/bin/python" ] && py="${root}/.venv/bin/python"
exec "${py}" -c 'import sys; from speechser.bin.data_tools import validate_main as m; sys.exit(m())' "$@"
