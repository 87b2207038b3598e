#!/usr/bin/env bash
# Sort a data directory, keep utterances present in every file, regenerate spk2utt; every utt2* file is
# filtered too. Originals are kept: run N copies them to .backup/N/ (never overwritten); .backup/ holds the latest.
# Kaldi's options (either spelling, --utt-extra-files or --utt_extra_files): [--utt-extra-files 'f1 f2'] [--spk-extra-files 'f3'] <data-dir>.
# Implemented in speechser (speechser.bin.data_tools:fix_main); run with --help for usage.
root=$(cd -P "$(dirname "$0")/.." && pwd)
py=python3
[ -x "${root}/.venv/bin/python" ] && py="${root}/.venv/bin/python"
exec "${py}" -c 'import sys; from speechser.bin.data_tools import fix_main as m; sys.exit(m())' "$@"
