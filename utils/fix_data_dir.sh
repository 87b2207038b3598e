#!/usr/bin/env bash
# Sort a data directory, keep utterances present in every file, regenerate spk2utt; every utt2* file is
# filtered too. Originals are kept: run N copies them to .backup/N/ (never overwritten); .backup/ holds the latest.
# Kaldi's options (either spelling, --utt-extra-files or --utt_extra_files): [--utt-extra-files 'f1 f2'] [--spk-extra-files 'f3'] <data-dir>.
# Implemented in speechser (console script speechser-fix-data-dir); run with --help for usage.
exec "$(dirname "$0")/console.sh" speechser-fix-data-dir "$@"
