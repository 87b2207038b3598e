#!/usr/bin/env bash
# Shared stage script of the ASR recipes (egs/<corpus>/asr1/run.sh calls it with "$@").
#
# Stages (each guarded; run any range with --stage N --stop_stage M):
#   1  data preparation      local/data.sh -> data/{train_set,valid_set,test_sets} (validated)
#   2  audio formatting      resample to ${fs} Hz, drop empty/too-short utterances -> dump/raw/<set>
#   3  speed perturbation    ${speed_perturb_factors} copies of the training set -> dump/raw/<train_set>_sp
#   4  features              log-Mel fbank over ${nj} jobs; global CMVN of the training set -> dump/fbank/<set>
#   5  token list            grapheme list or sentencepiece model from the training text -> data/token_list
#   6  ASR training          exp/<tag>/
#   7  decoding              every decoder in ${decoders} on valid and test sets -> exp/<tag>/decode_<dec>_<set>
#   8  scoring               WER/CER tables -> RESULTS.md
#   9  data filter loop      (with --filter_config) decode the training set, keep utterances by WER and CTC
#                            confidence, retrain, repeat -> exp/<tag>/filter/round<r>, rounds table in RESULTS.md
# The steps are the functions of utils/stage_lib.sh, shared with ser.sh and asr_ser.sh.
set -euo pipefail

. utils/log.sh
SECONDS=0
cmdline="$0 $*"

stage=1
stop_stage=100
nj=2
dumpdir=dump
expdir=exp
fs=16000
min_duration=0.1
num_mel_bins=80
local_data_opts=""
train_set=""
valid_set=""
test_sets=""
speed_perturb_factors=""   # e.g. "0.9 1.1" (the original is always kept)
token_type=char            # char | bpe | unigram
nbpe=30
asr_config=conf/train.yaml
asr_args=""
tag=""
inference_model=valid.acc.ave_10best.pt
decoders="ctc_greedy ctc_beam rnnt_greedy rnnt_beam"
beam_size=10
results_md=RESULTS.md
filter_config=""           # e.g. conf/filter.yaml (stage 9 runs only with it)
filter_args=""

help_message="Usage: $0 --train_set S --valid_set S --test_sets \"S ...\" [--stage N] [--stop_stage M] [options]"

log "$0 $*"
. ./path.sh
. ./cmd.sh
. utils/parse_options.sh
. utils/stage_lib.sh

[ $# -eq 0 ] || { log "Error: unexpected arguments: $*"; exit 2; }
[ -n "${train_set}" ] && [ -n "${valid_set}" ] || { log "Error: --train_set and --valid_set are required"; exit 2; }
[ -n "${tag}" ] || tag=$(default_tag "${asr_config}" "${token_type}")
exp=${expdir}/${tag}
if [ -n "${speed_perturb_factors}" ]; then train_used=${train_set}_sp; else train_used=${train_set}; fi

if [ ${stage} -le 1 ] && [ ${stop_stage} -ge 1 ]; then
    log "Stage 1: data preparation"
    prepare_data --no-feats ${train_set} ${valid_set} ${test_sets}
fi

if [ ${stage} -le 2 ] && [ ${stop_stage} -ge 2 ]; then
    log "Stage 2: audio formatting (${fs} Hz, minimum ${min_duration} s)"
    format_audio ${train_set} ${valid_set} ${test_sets}
fi

if [ ${stage} -le 3 ] && [ ${stop_stage} -ge 3 ] && [ -n "${speed_perturb_factors}" ]; then
    log "Stage 3: speed perturbation ${speed_perturb_factors} -> ${dumpdir}/raw/${train_set}_sp"
    parts=("${dumpdir}/raw/${train_set}")
    for f in ${speed_perturb_factors}; do
        speechser-speed-perturb "${dumpdir}/raw/${train_set}" "${dumpdir}/raw/${train_set}_sp${f}" \
            --audio-dir "${dumpdir}/raw/${train_set}_sp${f}/wav" --factor "${f}"
        parts+=("${dumpdir}/raw/${train_set}_sp${f}")
    done
    rm -rf "${dumpdir}/raw/${train_set}_sp"
    utils/combine_data.sh "${dumpdir}/raw/${train_set}_sp" "${parts[@]}"
    utils/validate_data_dir.sh --no-feats "${dumpdir}/raw/${train_set}_sp"
fi

if [ ${stage} -le 4 ] && [ ${stop_stage} -ge 4 ]; then
    log "Stage 4: fbank (${num_mel_bins} bins) over ${nj} jobs; global CMVN of ${train_used}"
    make_features ${train_used} ${train_used} ${valid_set} ${test_sets}
fi

if [ ${stage} -le 5 ] && [ ${stop_stage} -ge 5 ]; then
    log "Stage 5: ${token_type} token list from ${train_set} -> data/token_list/${token_type}"
    make_tokens ${train_set} "${token_type}" "${nbpe}"
fi

if [ ${stage} -le 6 ] && [ ${stop_stage} -ge 6 ]; then
    log "Stage 6: ASR training -> ${exp}"
    train_asr "${exp}" "${asr_config}" ${train_used} ${valid_set} $(token_args "${token_type}") ${asr_args}
fi

if [ ${stage} -le 7 ] && [ ${stop_stage} -ge 7 ]; then
    log "Stage 7: decoding (${decoders}) with ${inference_model}"
    decode_asr "${exp}" "${exp}/${inference_model}" "${decoders}" ${valid_set} ${test_sets}
fi

if [ ${stage} -le 8 ] && [ ${stop_stage} -ge 8 ]; then
    log "Stage 8: scoring -> ${results_md}"
    timing=""
    [ -f "${exp}/logs/train.elapsed" ] && timing="training wall time $(cat "${exp}/logs/train.elapsed") s;"
    score_asr "${tag}" "${tag}" "${timing} model ${inference_model}; no language model" \
        $(decode_dirs "${exp}" "${decoders}" ${valid_set} ${test_sets})
fi

if [ ${stage} -le 9 ] && [ ${stop_stage} -ge 9 ] && [ -n "${filter_config}" ]; then
    log "Stage 9: data filter loop (${filter_config}) from ${exp}/${inference_model} -> ${exp}/filter"
    filter_loop "${exp}" "${exp}/${inference_model}" "${filter_config}" ${train_used} ${valid_set} "${test_sets}" \
        ${filter_args}
    report_filter_rounds "${exp}" "${filter_config}"
fi

log "Successfully finished. [elapsed=${SECONDS}s]"
