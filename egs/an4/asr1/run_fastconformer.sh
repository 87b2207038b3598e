#!/usr/bin/env bash
# AN4 speech recognition with the FastConformer encoder (8x depthwise-separable subsampling, kernel 9):
# CTC + RNN-T, 128 BPE pieces (graphemes do not fit 80 ms frames), speed perturbation 0.9/1.1.
set -euo pipefail
[ -f ./db.sh ] || { echo "$0: run it from its recipe directory: cd $(dirname "$0") && ./$(basename "$0")" >&2; exit 1; }
./asr.sh --train_set train_nodev --valid_set train_dev --test_sets test \
    --speed_perturb_factors "0.9 1.1" --token_type bpe --nbpe 128 --asr_config conf/train_fastconformer.yaml "$@"
