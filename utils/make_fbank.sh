#!/usr/bin/env bash
# Log-Mel filterbank features of a data directory, split over nj jobs (Kaldi's steps/make_fbank.sh role):
#   utils/make_fbank.sh [--nj 4] [--cmd utils/run.pl] [--num_mel_bins 128] <src-data-dir> <dst-data-dir>
# <dst> gets a copy of <src> plus feats.scp and utt2num_frames; the matrices go to <dst>/data/,
# one log per job to <dst>/log/.
set -euo pipefail
nj=4
cmd=utils/run.pl
num_mel_bins=128
. "$(dirname "$0")/parse_options.sh"
if [ $# -ne 2 ]; then
    echo "Usage: $0 [--nj N] [--cmd CMD] [--num_mel_bins D] <src-data-dir> <dst-data-dir>" >&2
    exit 1
fi
src=$1
dst=$2
utils=$(dirname "$0")
rm -rf "${dst}"
"${utils}/copy_data_dir.sh" "${src}" "${dst}"
mkdir -p "${dst}/split${nj}" "${dst}/data" "${dst}/log"
outs=$(for n in $(seq "${nj}"); do echo "${dst}/split${nj}/utt2spk.${n}"; done)
"${utils}/split_scp" --utt2spk "${src}/utt2spk" "${src}/utt2spk" ${outs}
${cmd} JOB=1:"${nj}" "${dst}/log/fbank.JOB.log" \
    speechser-compute-fbank "${src}" "${dst}/data/raw_fbank.JOB" --num-mel-bins "${num_mel_bins}" \
    --utt-list "${dst}/split${nj}/utt2spk.JOB"
for n in $(seq "${nj}"); do cat "${dst}/data/raw_fbank.${n}.scp"; done | LC_ALL=C sort > "${dst}/feats.scp"
for n in $(seq "${nj}"); do cat "${dst}/data/raw_fbank.${n}.num_frames"; done | LC_ALL=C sort > "${dst}/utt2num_frames"
echo "$0: ${dst}: $(wc -l < "${dst}/feats.scp") utterances"
