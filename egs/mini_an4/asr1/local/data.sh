#!/usr/bin/env bash
# A few minutes of AN4 (the shared copy; db.sh: AN4) -> data/train (250 training utterances, spread evenly
# over the speakers), data/dev (50 held-out training utterances), data/test (AN4's test set, 117).
set -euo pipefail
. ./db.sh
if [ ! -d "${AN4}/etc" ]; then
    echo "$0: AN4 not found at '${AN4}' (set SPEECHSER_AN4 or edit db.sh)" >&2
    exit 1
fi
python3 local/prepare_an4.py "${AN4}" data/an4
rm -rf data/train data/dev data/test
utils/subset_data_dir.sh data/an4/train_nodev 250 data/train
utils/subset_data_dir.sh data/an4/train_dev 50 data/dev
utils/copy_data_dir.sh data/an4/test data/test
