#!/usr/bin/env bash
# CREMA-D emotion recognition (6 classes), speaker-independent: 10 folds of actor groups (data/all/utt2session).
# The default system is the one that wins on Emo-DB on a CPU: ComParE 2016 functionals from openSMILE,
# z-normalized per speaker, logistic regression with C chosen on each fold's validation group.
#   ./run.sh                                               10-fold speaker-independent (losess over actor groups)
#   ./run.sh --protocol loso                               leave one actor out (91 folds)
#   ./run.sh --protocol random10                           10-fold stratified random (speaker-dependent)
#   ./run.sh --feats_type fbank --ser_config conf/train_tdnn_soft.yaml --ser_tag tdnn_soft   the crowd's votes as
#                                                          soft targets (utt2emo_dist) for a TDNN on fbank
set -euo pipefail
[ -f ./db.sh ] || { echo "$0: run it from its recipe directory: cd $(dirname "$0") && ./$(basename "$0")" >&2; exit 1; }
./ser.sh --protocol losess --feats_type opensmile_functionals --opensmile_set ComParE_2016 \
    --ser_config conf/train_compare_logreg.yaml --cmvn_type speaker "$@"
