#!/usr/bin/env bash
# MSP-Podcast (v1.12) emotion recognition, the 2025 challenge's categorical task: 8 classes
# (neu hap sad ang dis con fea sur), the release's own partition (--protocol split: train = Train,
# valid = Development, test = Test1), scored by macro-F1 (the challenge's metric), UA and WA.
#   ./run.sh                                             WavLM-large, weighted sum of layers, soft labels
#   ./run.sh --make_folds_opts "--test-split Test2" --ser_tag train_ssl_test2     scored on Test2 instead
#   ./run.sh --local_data_opts "--keep_no_agreement false"  leave Train's O/X utterances out of data/all
#                                                     (kept by default, listed in no_consensus: the SAILER
#                                                     configs train on them, the categorical ones skip them)
#   ./run.sh --ser_config conf/train_sailer.yaml --ser_model valid.macro_f1.ave_3best.pt
#                                                     the SAILER system (model sailer_ser; to become the
#                                                     default once it has been run here)
# Set SPEECHSER_MSP_PODCAST (or db.sh) to your release root (Audios/, Labels/, Transcripts/). The config
# is the paper's size (a GPU, microsoft/wavlm-large from the hub or a local directory).
set -euo pipefail
[ -f ./db.sh ] || { echo "$0: run it from its recipe directory: cd $(dirname "$0") && ./$(basename "$0")" >&2; exit 1; }
. ./db.sh
./ser.sh --protocol split --cmvn_type none --ser_config conf/train_ssl.yaml \
    --ser_model valid.macro_f1.ave_5best.pt "$@"
