#!/usr/bin/env bash
# EmoV-DB emotion recognition (5 styles: amused, angry, disgusted, neutral, sleepy), leave one speaker out
# (4 speakers). The default system is the one that wins on Emo-DB on a CPU: ComParE 2016 functionals,
# z-normalized per speaker, logistic regression with C chosen on each fold's validation speaker.
#   ./run.sh                                       leave one speaker out (4 folds)
#   ./run.sh --protocol random10                   10-fold stratified random (speaker-dependent)
#   ./run.sh --local_data_opts "--text false"      without CMU Arctic's cmuarctic.data (no transcripts)
set -euo pipefail
[ -f ./db.sh ] || { echo "$0: run it from its recipe directory: cd $(dirname "$0") && ./$(basename "$0")" >&2; exit 1; }
./ser.sh --feats_type opensmile_functionals --opensmile_set ComParE_2016 \
    --ser_config conf/train_compare_logreg.yaml --cmvn_type speaker "$@"
