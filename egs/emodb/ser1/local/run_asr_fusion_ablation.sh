#!/usr/bin/env bash
# Emo-DB leave-one-speaker-out ablation of the multi-stage system's SER parts, same folds for every row:
#   1. the foundation model                 conf/train_tdnn.yaml                    (./run.sh)
#   2. + fusion with the AN4 ASR encoder    conf/train_tdnn_asr_fusion.yaml
#   3. + the hybrid CE + SupCon loss        conf/train_tdnn_asr_fusion_supcon.yaml
#   4. + k-NN interpolation                 row 3's models decoded with --knn true
# The ASR encoder is the AN4 model of ../../an4/asr1 (English, so no Emo-DB test speaker was ever
# heard by it); run that recipe first. Extra options (e.g. --train_jobs 2) pass to run.sh.
set -euo pipefail
asr_model=../../an4/asr1/exp/train_char/valid.acc.ave_5best.pt
if [ ! -f "${asr_model}" ]; then
    echo "$0: ${asr_model} not found: run egs/an4/asr1 first" >&2
    exit 1
fi
[ -d data/loso ] || ./run.sh --stop_stage 4 "$@"
[ -f exp/train_tdnn/loso/scores/scores.tsv ] || ./run.sh --stage 5 "$@"
./run.sh --stage 5 --train_config conf/train_tdnn_asr_fusion.yaml "$@"
./run.sh --stage 5 --train_config conf/train_tdnn_asr_fusion_supcon.yaml --knn true "$@"
