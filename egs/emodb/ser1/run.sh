#!/usr/bin/env bash
# Emo-DB emotion recognition (7 classes). The default system is the best this recipe runs in 15 minutes on a
# 2-core CPU (make demo): ComParE 2016 functionals from openSMILE, z-normalized per speaker, with logistic
# regression (C chosen on each fold's validation speaker). RESULTS.md has every system's rows.
#   ./run.sh                                 leave-one-speaker-out, all 10 folds
#   ./run.sh --protocol random10             10-fold stratified random cross-validation
#   ./run.sh --feats_type fbank --train_config conf/train_tdnn_soft.yaml   a from-scratch TDNN on fbank
#   ./run.sh --feats_type fbank --train_config conf/train_tdnn.yaml --stage 5 --folds "1 2"   retrain two folds
#   ./run.sh --fusion_config conf/fuse_compare_tdnn_soft.yaml --stage 5     late fusion (see the config)
set -euo pipefail
./ser.sh --feats_type opensmile_functionals --opensmile_set ComParE_2016 \
    --train_config conf/train_compare_logreg.yaml --cmvn_type speaker "$@"
