#!/usr/bin/env bash
# Copy a subset of a data directory: --utt-list FILE, --spk-list FILE or --first N.
# Implemented in speechser (speechser.bin.data_tools:subset_main); run with --help for usage.
exec python3 -c 'import sys; from speechser.bin.data_tools import subset_main as m; sys.exit(m())' "$@"
