#!/usr/bin/env bash
# RAVDESS emotion recognition (speech, 8 classes; 7 without calm), speaker-independent. The default system is
# the one that wins on Emo-DB on a CPU: ComParE 2016 functionals from openSMILE, z-normalized per speaker,
# logistic regression with C chosen on each fold's validation actor.
#   ./run.sh                                          leave-one-actor-out, 24 folds
#   ./run.sh --protocol losess                        6 folds of 4 actors (data/all/utt2session)
#   ./run.sh --protocol random10                      10-fold stratified random (speaker-dependent)
#   ./run.sh --local_data_opts "--classes 7" --ser_tag compare_logreg_7class    without calm
#   ./run.sh --feats_type fbank --ser_config conf/train.yaml              a from-scratch TDNN on fbank
set -euo pipefail
[ -f ./db.sh ] || { echo "$0: run it from its recipe directory: cd $(dirname "$0") && ./$(basename "$0")" >&2; exit 1; }
./ser.sh --feats_type opensmile_functionals --opensmile_set ComParE_2016 \
    --ser_config conf/train_compare_logreg.yaml --cmvn_type speaker "$@"
