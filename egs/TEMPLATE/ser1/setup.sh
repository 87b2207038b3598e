#!/usr/bin/env bash
# Create a new SER recipe directory from this template:  egs/TEMPLATE/ser1/setup.sh egs/<corpus>/ser1
# (links ser.sh and utils/; copies conf/, cmd.sh, path.sh; a db.sh reading the shared list; see ../common/make_recipe.sh).
exec "$(dirname "$0")/../common/make_recipe.sh" "$(dirname "$0")" ser.sh "--ser_config conf/train.yaml" \
    "data/all: wav.scp utt2spk spk2utt utt2emo (and text, utt2gender, ... where the corpus has them)
# plus the label list data/all/emotions.txt" "$@"
