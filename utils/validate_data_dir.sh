#!/usr/bin/env bash
# Check a Kaldi data directory: sorted files, one key set, spk2utt = inverse of utt2spk, audio, labels.
# Kaldi's options: [--no-feats] [--no-text] [--no-wav] [--non-print] [--no-spk-sort] <data-dir>.
# Implemented in speechser (console script speechser-validate-data-dir); run with --help for usage.
exec "$(dirname "$0")/console.sh" speechser-validate-data-dir "$@"
