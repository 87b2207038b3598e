#!/usr/bin/env bash
# Emo-DB emotion recognition (7 classes). The default system is the best this recipe runs in 15 minutes on a
# 2-core CPU (make demo): the frozen encoder of Whisper base (db.sh: WHISPER_BASE, or --ssl_model) run once per
# utterance on its own length, every hidden state pooled to mean and standard deviation, z-normalized per
# speaker, and a logistic-regression probe whose hidden states and C are chosen on each fold's validation
# speaker. RESULTS.md has every system's rows.
#   ./run.sh                                 leave-one-speaker-out, all 10 folds
#   ./run.sh --protocol random10             10-fold stratified random cross-validation
#   ./run.sh --feats_type opensmile_functionals --opensmile_set ComParE_2016 \
#       --ser_config conf/train_compare_logreg.yaml    the classical baseline (ComParE functionals)
#   ./run.sh --feats_type fbank --ser_config conf/train_tdnn_soft.yaml   a from-scratch TDNN on fbank
#   ./run.sh --feats_type fbank --ser_config conf/train_tdnn.yaml --stage 5 --folds "1 2"   retrain two folds
#   ./run.sh --fusion_config conf/fuse_compare_tdnn_soft.yaml --stage 5     late fusion (see the config)
set -euo pipefail
[ -f ./db.sh ] || { echo "$0: run it from its recipe directory: cd $(dirname "$0") && ./$(basename "$0")" >&2; exit 1; }
. ./db.sh
./ser.sh --feats_type ssl_functionals --ssl_model "${WHISPER_BASE}" \
    --ser_config conf/train_whisper_probe.yaml --cmvn_type speaker "$@"
