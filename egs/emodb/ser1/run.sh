#!/usr/bin/env bash
# Emo-DB emotion recognition (7 classes) from filterbanks, trained from scratch.
#   ./run.sh                               leave-one-speaker-out, all 10 folds
#   ./run.sh --protocol random10           10-fold stratified random cross-validation
#   ./run.sh --stage 5 --folds "1 2"       retrain two folds
set -euo pipefail
./ser.sh --train_config conf/train_tdnn.yaml --cmvn_type speaker "$@"
