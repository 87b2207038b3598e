#!/usr/bin/env bash
# IEMOCAP -> data/all (the release root comes from db.sh: IEMOCAP; its layout: local/prepare_iemocap.py).
set -euo pipefail
. ./db.sh
if [ ! -d "${IEMOCAP}/Session1" ]; then
    echo "$0: IEMOCAP not found at '${IEMOCAP}' (set SPEECHSER_IEMOCAP or edit db.sh)" >&2
    exit 1
fi
python3 local/prepare_iemocap.py "${IEMOCAP}" data/all
