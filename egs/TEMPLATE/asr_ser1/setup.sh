#!/usr/bin/env bash
# Create a new joint ASR + SER recipe directory from this template:  egs/TEMPLATE/asr_ser1/setup.sh egs/<corpus>/asr_ser1
# (links asr_ser.sh and utils/; copies conf/, cmd.sh, path.sh; a db.sh reading the shared list; see ../common/make_recipe.sh).
exec "$(dirname "$0")/../common/make_recipe.sh" "$(dirname "$0")" asr_ser.sh \
    "--train_set train --valid_set dev --test_sets test --noise_scp \"\${NOISE_SCP}\" --rir_scp \"\${RIR_SCP}\"" \
    "data/train, data/dev and data/test: wav.scp utt2spk spk2utt text utt2emo,
# plus the label list data/emotions.txt (every label also in conf/label_map.yaml)" "$@"
