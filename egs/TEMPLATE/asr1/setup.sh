#!/usr/bin/env bash
# Create a new ASR recipe directory from this template:  egs/TEMPLATE/asr1/setup.sh egs/<corpus>/asr1
# (links asr.sh and utils/; copies conf/, cmd.sh, path.sh; a db.sh reading the shared list; see ../common/make_recipe.sh).
exec "$(dirname "$0")/../common/make_recipe.sh" "$(dirname "$0")" asr.sh \
    "--train_set train --valid_set dev --test_sets test --asr_config conf/train.yaml" \
    "data/train, data/dev and data/test: wav.scp utt2spk spk2utt text" "$@"
