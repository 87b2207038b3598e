#!/usr/bin/env bash
# AN4 -> data/train_nodev, data/train_dev (100 held-out training utterances), data/test
# (the corpus root comes from db.sh: AN4).
set -euo pipefail
. ./db.sh
if [ ! -d "${AN4}/etc" ]; then
    echo "$0: AN4 not found at '${AN4}' (set SPEECHSER_AN4 or edit db.sh)" >&2
    exit 1
fi
python3 local/prepare_an4.py "${AN4}" data
