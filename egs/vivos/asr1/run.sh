#!/usr/bin/env bash
# VIVOS Vietnamese speech recognition: the VLSP 2025 system's Conformer CTC + RNN-T on lower-cased Vietnamese
# graphemes, 0.9/1.1 speed perturbation, 4 training speakers held out for validation (VIVOS has no dev set).
#   ./run.sh                                          graphemes, the paper-size Conformer (a GPU)
#   ./run.sh --asr_config conf/train_small.yaml       the CPU-sized Conformer
#   ./run.sh --token_type bpe --nbpe 500              sentencepiece BPE units instead of graphemes
set -euo pipefail
[ -f ./db.sh ] || { echo "$0: run it from its recipe directory: cd $(dirname "$0") && ./$(basename "$0")" >&2; exit 1; }
./asr.sh --train_set train_nodev --valid_set train_dev --test_sets test --token_type char \
    --speed_perturb_factors "0.9 1.1" --asr_config conf/train.yaml "$@"
