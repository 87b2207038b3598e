#!/usr/bin/env bash
# VLSP 2025 ASR-SER release -> data/{train,dev,test}, data/emotions.txt
# (the release root comes from db.sh: VLSP2025; its layout: local/prepare_vlsp2025.py).
set -euo pipefail
. ./db.sh
if [ ! -d "${VLSP2025}/train" ]; then
    echo "$0: the VLSP 2025 release was not found at '${VLSP2025}' (set SPEECHSER_VLSP2025 or edit db.sh)" >&2
    exit 1
fi
python3 local/prepare_vlsp2025.py "${VLSP2025}" data
