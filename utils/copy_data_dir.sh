#!/usr/bin/env bash
# Copy a data directory, optionally adding utterance/speaker prefixes or suffixes, then validate the copy:
# [--utt-prefix P] [--utt-suffix S] [--spk-prefix P] [--spk-suffix S] [--validate-opts 'OPTS'] <src> <dst>.
# Implemented in speechser (speechser.bin.data_tools:copy_main); run with --help for usage.
root=$(cd -P "$(dirname "$0")/.." && pwd)
py=python3
[ -x "${root}/.venv/bin/python" ] && py="${root}/.venv/bin/python"
exec "${py}" -c 'import sys; from speechser.bin.data_tools import copy_main as m; sys.exit(m())' "$@"
