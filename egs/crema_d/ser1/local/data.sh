#!/usr/bin/env bash
# CREMA-D (AudioWAV/, VideoDemographics.csv, processedResults/tabulatedVotes.csv, as distributed) -> data/all,
# with the voice-only raters' votes as soft labels (data/all/utt2emo_dist).
#   local/data.sh [--votes voice|face|audiovisual|none] [--speaker_groups 10]   (run.sh: --local_data_opts "...")
# The release root comes from db.sh (CREMA_D).
set -euo pipefail
. ./db.sh
votes=voice
speaker_groups=10
. utils/parse_options.sh
if [ ! -d "${CREMA_D}" ]; then
    echo "$0: CREMA-D not found at '${CREMA_D}' (set SPEECHSER_CREMA_D or edit db.sh)" >&2
    exit 1
fi
rm -rf data/all
python3 local/prepare_crema_d.py --votes "${votes}" --speaker_groups "${speaker_groups}" "${CREMA_D}" data/all
utils/validate_data_dir.sh --no-feats --labels utt2emo=data/all/emotions.txt data/all
