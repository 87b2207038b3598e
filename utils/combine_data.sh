#!/usr/bin/env bash
# Combine data directories: combine_data.sh [--extra-files 'f1 f2'] [--skip-fix] dst src1 src2 ...
# Implemented in speechser (speechser.bin.data_tools:combine_main); run with --help for usage.
root=$(cd -P "$(dirname "$0")/.." && pwd)
py=python3
[ -x "${root}/.venv/bin/python" ] && py="${root}/.venv/bin/python"
exec "${py}" -c 'import sys; from speechser.bin.data_tools import combine_main as m; sys.exit(m())' "$@"
