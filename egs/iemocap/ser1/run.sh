#!/usr/bin/env bash
# IEMOCAP emotion recognition, 4 classes (excited merged into happy; 5,531 utterances), UA and WA.
#   ./run.sh                                          CmGI (acoustic + semantic interaction), leave-one-session-out (5 folds)
#   ./run.sh --ser_config conf/train_metadata.yaml --ser_model valid.ua.ave_5best.pt
#                                                     the metadata-enhanced system
#   ./run.sh --ser_config conf/train_pcq.yaml --ser_model valid.ua.ave_5best.pt
#                                                     PCQ, on its own protocol (10 random folds)
#   ./run.sh --protocol loso                          leave-one-speaker-out (10 folds)
# Each config names the protocol its paper used (protocol: in the YAML); --protocol overrides it. Leave-one-
# session-out validates on one speaker of the next session and trains on the other seven speakers
# (--make_folds_opts "--valid next": a whole session, training on three of five, as before).
# Set SPEECHSER_IEMOCAP (or db.sh) to your IEMOCAP_full_release. The configs are the papers' sizes (GPUs,
# pretrained models from the hub or local directories).
set -euo pipefail
[ -f ./db.sh ] || { echo "$0: run it from its recipe directory: cd $(dirname "$0") && ./$(basename "$0")" >&2; exit 1; }
. ./db.sh
./ser.sh --ser_config conf/train_cmgi.yaml --cmvn_type none \
    --ser_model valid.ua.ave_3best.pt "$@"
