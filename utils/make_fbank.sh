#!/usr/bin/env bash
# Log-Mel filterbank features of a data directory, split over nj jobs (Kaldi's steps/make_fbank.sh role):
#   utils/make_fbank.sh [--nj 4] [--cmd utils/run.pl] [--num_mel_bins 128] <src-data-dir> <dst-data-dir>
# or openSMILE features instead (--feats_type opensmile_functionals|opensmile_lld, --opensmile_set
# eGeMAPSv02|ComParE_2016): one 1 x D matrix per utterance, or the frame-level descriptors; or a frozen
# pretrained encoder's hidden states (--feats_type ssl_functionals|ssl_frames, --ssl_model DIR_OR_NAME,
# --ssl_layers all|1-4, --ssl_window utterance|padded; speechser-compute-ssl, one torch thread per job).
# <dst> gets a copy of <src> plus feats.scp and utt2num_frames; the matrices go to <dst>/data/,
# one log per job to <dst>/log/.
# Safety: the options are checked before anything is touched (--nj a whole number >= 1; <dst> not <src>,
# not inside it, not holding it). More jobs than speakers fall back to one job per speaker (said on stderr).
# Everything is built in a temporary sibling <dst>.new.<pid>, which replaces an existing <dst> only when
# every job has succeeded: a failed run leaves the old <dst> as it was.
set -euo pipefail
nj=4
cmd=utils/run.pl
num_mel_bins=128
feats_type=fbank
opensmile_set=eGeMAPSv02
ssl_model=
ssl_layers=all
ssl_window=utterance
. "$(dirname "$0")/parse_options.sh"
if [ $# -ne 2 ]; then
    echo "Usage: $0 [--nj N] [--cmd CMD] [--num_mel_bins D] [--feats_type fbank|opensmile_functionals|opensmile_lld|" \
         "ssl_functionals|ssl_frames] [--opensmile_set eGeMAPSv02|ComParE_2016] [--ssl_model DIR_OR_NAME]" \
         "[--ssl_layers all|1-4] [--ssl_window utterance|padded] <src-data-dir> <dst-data-dir>" >&2
    exit 1
fi
src=$1
dst=$2
utils=$(dirname "$0")
die() { echo "$0: error: $*" >&2; exit 1; }

[[ "${nj}" =~ ^[0-9]+$ ]] && [ "${nj}" -ge 1 ] || die "--nj must be a whole number >= 1, got '${nj}'"
[[ "${num_mel_bins}" =~ ^[0-9]+$ ]] && [ "${num_mel_bins}" -ge 1 ] \
    || die "--num_mel_bins must be a whole number >= 1, got '${num_mel_bins}'"
case "${feats_type}" in
    fbank) extract=(speechser-compute-fbank --num-mel-bins "${num_mel_bins}") ;;
    opensmile_functionals|opensmile_lld)
        case "${opensmile_set}" in eGeMAPSv02|ComParE_2016) ;;
            *) die "--opensmile_set must be eGeMAPSv02 or ComParE_2016, got '${opensmile_set}'" ;; esac
        extract=(speechser-compute-opensmile --feature-set "${opensmile_set}" --level "${feats_type#opensmile_}") ;;
    ssl_functionals|ssl_frames)
        [ -n "${ssl_model}" ] || die "--feats_type ${feats_type} needs --ssl_model (a hub name or a local model directory)"
        extract=(speechser-compute-ssl --model "${ssl_model}" --layers "${ssl_layers}" --window "${ssl_window}"
                 --level "${feats_type#ssl_}" --num-threads 1) ;;
    *) die "--feats_type must be fbank, opensmile_functionals, opensmile_lld, ssl_functionals or ssl_frames, got '${feats_type}'" ;;
esac
# --cmd is the job runner with its options, one string ("utils/slurm.pl --mem 4G"): its words, not globbed
read -r -d '' -a runner <<< "${cmd}" || true
[ "${#runner[@]}" -ge 1 ] || die "--cmd is empty; give the job runner, e.g. --cmd utils/run.pl"
[ -f "${src}/utt2spk" ] || die "${src}/utt2spk: no such file (is ${src} a data directory?)"
[ -f "${src}/spk2utt" ] || die "${src}/spk2utt: no such file (utils/fix_data_dir.sh makes it)"
src_abs=$(realpath -m -- "${src}")
dst_abs=$(realpath -m -- "${dst}")
[ "${src_abs}" != "${dst_abs}" ] || die "source and destination are the same directory (${src}); give another <dst-data-dir>"
case "${dst_abs}/" in "${src_abs}/"*) die "destination ${dst} is inside source ${src}; give a destination outside it" ;; esac
case "${src_abs}/" in "${dst_abs}/"*) die "destination ${dst} contains source ${src}; it would be replaced" ;; esac
[ ! -e "${dst_abs}" ] || [ -d "${dst_abs}" ] || die "destination ${dst} exists and is not a directory"
nspk=$(wc -l < "${src}/spk2utt")
[ "${nspk}" -ge 1 ] || die "${src}/spk2utt: no speakers"
if [ "${nj}" -gt "${nspk}" ]; then
    echo "$0: warning: --nj ${nj} is more than the ${nspk} speaker(s) of ${src} (a job holds whole speakers);" \
         "using --nj ${nspk}" >&2
    nj=${nspk}
fi

tmp="${dst_abs}.new.$$"
old="${dst_abs}.old.$$"
trap 'rm -rf -- "${tmp}"' EXIT
rm -rf -- "${tmp}"
mkdir -p "$(dirname "${dst_abs}")"
"${utils}/copy_data_dir.sh" "${src}" "${tmp}"
mkdir -p "${tmp}/split${nj}" "${tmp}/data" "${tmp}/log"
outs=()
for n in $(seq "${nj}"); do outs+=("${tmp}/split${nj}/utt2spk.${n}"); done
"${utils}/split_scp" --utt2spk "${src}/utt2spk" "${src}/utt2spk" "${outs[@]}"
"${runner[@]}" JOB=1:"${nj}" "${tmp}/log/${feats_type}.JOB.log" \
    "${extract[@]}" "${src}" "${tmp}/data/raw_${feats_type}.JOB" --utt-list "${tmp}/split${nj}/utt2spk.JOB"
# the scp files name the archives by absolute path: point them at their final place
repath() { OLD="${tmp}/" NEW="${dst_abs}/" awk 'BEGIN { o = ENVIRON["OLD"]; n = ENVIRON["NEW"] }
    { i = index($0, o); if (i) $0 = substr($0, 1, i - 1) n substr($0, i + length(o)); print }'; }
for n in $(seq "${nj}"); do
    repath < "${tmp}/data/raw_${feats_type}.${n}.scp" > "${tmp}/data/raw_${feats_type}.${n}.scp.tmp"
    mv "${tmp}/data/raw_${feats_type}.${n}.scp.tmp" "${tmp}/data/raw_${feats_type}.${n}.scp"
done
for n in $(seq "${nj}"); do cat "${tmp}/data/raw_${feats_type}.${n}.scp"; done | LC_ALL=C sort > "${tmp}/feats.scp"
for n in $(seq "${nj}"); do cat "${tmp}/data/raw_${feats_type}.${n}.num_frames"; done | LC_ALL=C sort > "${tmp}/utt2num_frames"
# Utterances a front-end skipped (openSMILE: clipped audio) are listed in data/*.skipped: drop them here.
nskip=$(cat "${tmp}"/data/raw_"${feats_type}".*.skipped 2>/dev/null | wc -l)
if [ "${nskip}" -gt 0 ]; then
    echo "$0: warning: ${nskip} utterance(s) skipped by the feature extractor and dropped from ${dst}" \
         "(reasons in ${dst}/data/raw_${feats_type}.*.skipped):" >&2
    head -q -n 5 "${tmp}"/data/raw_"${feats_type}".*.skipped | head -n 5 | sed 's/^/  /' >&2 || true
    "${utils}/fix_data_dir.sh" "${tmp}" >&2
fi
# replace the old destination only now that everything succeeded
if [ -e "${dst_abs}" ]; then
    mv -- "${dst_abs}" "${old}"
    mv -- "${tmp}" "${dst_abs}"
    rm -rf -- "${old}"
else
    mv -- "${tmp}" "${dst_abs}"
fi
trap - EXIT
echo "$0: ${dst}: $(wc -l < "${dst}/feats.scp") utterances"
