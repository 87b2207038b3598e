#!/usr/bin/env bash
# Combine data directories: combine_data.sh [--extra-files 'f1 f2'] [--skip-fix] dst src1 src2 ...
# Implemented in speechser (console script speechser-combine-data); run with --help for usage.
exec "$(dirname "$0")/console.sh" speechser-combine-data "$@"
