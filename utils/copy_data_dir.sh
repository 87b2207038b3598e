#!/usr/bin/env bash
# Copy a data directory, optionally adding utterance/speaker prefixes or suffixes.
# Implemented in speechser (speechser.bin.data_tools:copy_main); run with --help for usage.
exec python3 -c 'import sys; from speechser.bin.data_tools import copy_main as m; sys.exit(m())' "$@"
