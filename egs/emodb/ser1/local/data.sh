#!/usr/bin/env bash
# Emo-DB -> data/all (the corpus root comes from db.sh: EMODB).
set -euo pipefail
. ./db.sh
if [ ! -d "${EMODB}/wav" ]; then
    echo "$0: Emo-DB not found at '${EMODB}' (set SPEECHSER_EMODB or edit db.sh)" >&2
    exit 1
fi
python3 local/prepare_emodb.py "${EMODB}" data/all
