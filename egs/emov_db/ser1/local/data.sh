#!/usr/bin/env bash
# EmoV-DB (the sorted release: <speaker>/<Emotion>/<style>_<a>-<b>_<NNNN>.wav, plus CMU Arctic's cmuarctic.data
# in its root for the transcripts) -> data/all.
#   local/data.sh [--text true|false]   (run.sh: --local_data_opts "--text false" without cmuarctic.data)
# The release root comes from db.sh (EMOV_DB).
set -euo pipefail
. ./db.sh
text=true
. utils/parse_options.sh
if [ ! -d "${EMOV_DB}" ]; then
    echo "$0: EmoV-DB not found at '${EMOV_DB}' (set SPEECHSER_EMOV_DB or edit db.sh)" >&2
    exit 1
fi
opts=()
[ "${text}" = true ] || opts+=(--no-text)
rm -rf data/all
python3 local/prepare_emov_db.py "${opts[@]}" "${EMOV_DB}" data/all
validate_opts=(--no-feats)
[ "${text}" = true ] || validate_opts+=(--no-text)
utils/validate_data_dir.sh "${validate_opts[@]}" --labels utt2emo=data/all/emotions.txt data/all
