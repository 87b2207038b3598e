#!/usr/bin/env bash
# Copy a subset of a data directory (Kaldi's options): [--first|--last|--shortest|--per-spk] <src> <N> <dst>,
# --utt-list FILE or --spk-list FILE <src> <dst>. <dst> may not be <src> or nested with it; an existing <dst>
# ends up with exactly the files derived from <src> (stale ones such as an old feats.scp are removed, logged).
# Implemented in speechser (console script speechser-subset-data-dir); run with --help for usage.
exec "$(dirname "$0")/console.sh" speechser-subset-data-dir "$@"
