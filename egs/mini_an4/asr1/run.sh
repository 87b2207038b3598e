#!/usr/bin/env bash
# mini_an4: the smallest complete ASR recipe, a few minutes of AN4 (250 training utterances, 11 minutes of
# speech) that trains on 2 CPU cores in about ten minutes, to see every stage work before a real corpus.
# It uses the configuration for small data (conf/train_small.yaml): a CTC-only Conformer whose warm-up is a
# share of the run, with early stopping. The full recipe is egs/an4/asr1.
#   ./run.sh                                  stages 1-10: data, audio, features, tokens, training, decoding,
#                                             scoring, packing
set -euo pipefail
[ -f ./db.sh ] || { echo "$0: run it from its recipe directory: cd $(dirname "$0") && ./$(basename "$0")" >&2; exit 1; }
. ./db.sh
./asr.sh --train_set train --valid_set dev --test_sets test --token_type char \
    --asr_config conf/train_small.yaml "$@"
