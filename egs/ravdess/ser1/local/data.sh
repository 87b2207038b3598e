#!/usr/bin/env bash
# RAVDESS speech (Actor_01 .. Actor_24, as Audio_Speech_Actors_01-24.zip unpacks) -> data/all.
#   local/data.sh [--classes 8|7]     (run.sh: --local_data_opts "--classes 7"; 7 drops calm)
# The release root comes from db.sh (RAVDESS).
set -euo pipefail
. ./db.sh
classes=8
. utils/parse_options.sh
if [ ! -d "${RAVDESS}" ]; then
    echo "$0: RAVDESS not found at '${RAVDESS}' (set SPEECHSER_RAVDESS or edit db.sh)" >&2
    exit 1
fi
rm -rf data/all
python3 local/prepare_ravdess.py --classes "${classes}" "${RAVDESS}" data/all
utils/validate_data_dir.sh --no-feats --labels utt2emo=data/all/emotions.txt data/all
