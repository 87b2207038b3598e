#!/usr/bin/env bash
# MSP-Podcast -> data/all (the release root comes from db.sh: MSP_PODCAST; its layout and what is kept:
# local/prepare_msp_podcast.py). Options (ser.sh --local_data_opts "..."):
#   --keep_no_agreement true   (default) keep the Train utterances of consensus O/X with their plurality
#                              class, for soft-label training (SAILER), and list them in data/all/no_consensus:
#                              a config with data.skip_file: no_consensus (conf/train_ssl.yaml, the challenge's
#                              categorical baseline) leaves them out of its training set
#   --keep_no_agreement false  exclude every O/X utterance from data/all (no_consensus is then empty)
set -euo pipefail
keep_no_agreement=true
. utils/parse_options.sh
. ./db.sh
if [ ! -f "${MSP_PODCAST}/Labels/labels_consensus.csv" ]; then
    echo "$0: MSP-Podcast not found at '${MSP_PODCAST}' (no Labels/labels_consensus.csv;" \
        "set SPEECHSER_MSP_PODCAST or edit db.sh)" >&2
    exit 1
fi
python3 local/prepare_msp_podcast.py --keep_no_agreement "${keep_no_agreement}" "${MSP_PODCAST}" data/all
