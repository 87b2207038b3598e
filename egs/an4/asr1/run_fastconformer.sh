#!/usr/bin/env bash
# AN4 speech recognition with the FastConformer encoder (8x depthwise-separable subsampling, kernel 9):
# CTC + RNN-T on the Conformer recipe's graphemes, speed perturbation 0.9/1.1. Training leaves out (logged,
# counted) the 173 speed-perturbed utterances with more characters than 80 ms frames; the graphemes were
# chosen over 64 and 128 BPE pieces on dev (RESULTS.md).
set -euo pipefail
[ -f ./db.sh ] || { echo "$0: run it from its recipe directory: cd $(dirname "$0") && ./$(basename "$0")" >&2; exit 1; }
./asr.sh --train_set train_nodev --valid_set train_dev --test_sets test \
    --speed_perturb_factors "0.9 1.1" --token_type char --asr_config conf/train_fastconformer.yaml "$@"
