#!/usr/bin/env bash
# VIVOS (vivos/train, vivos/test: prompts.txt, genders.txt, waves/<speaker>/<utt>.wav) -> data/train_nodev,
# data/train_dev (the last --dev_speakers training speakers) and data/test.
#   local/data.sh [--dev_speakers 4]   (run.sh: --local_data_opts "--dev_speakers 2")
# The release root comes from db.sh (VIVOS).
set -euo pipefail
. ./db.sh
dev_speakers=4
. utils/parse_options.sh
if [ ! -d "${VIVOS}/train" ]; then
    echo "$0: VIVOS not found at '${VIVOS}' (expected ${VIVOS}/train and ${VIVOS}/test; set SPEECHSER_VIVOS or edit db.sh)" >&2
    exit 1
fi
rm -rf data/train_nodev data/train_dev data/test
python3 local/prepare_vivos.py --dev-speakers "${dev_speakers}" "${VIVOS}" data
for s in train_nodev train_dev test; do utils/validate_data_dir.sh --no-feats "data/${s}"; done
