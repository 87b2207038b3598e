#!/usr/bin/env bash
# Copy a data directory, optionally adding utterance/speaker prefixes or suffixes, then validate the copy:
# [--utt-prefix P] [--utt-suffix S] [--spk-prefix P] [--spk-suffix S] [--validate-opts 'OPTS'] <src> <dst>.
# Implemented in speechser (console script speechser-copy-data-dir); run with --help for usage.
exec "$(dirname "$0")/console.sh" speechser-copy-data-dir "$@"
