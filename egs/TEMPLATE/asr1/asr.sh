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

[ $# -eq 0 ] || { log "Error: unexpected arguments: $*"; exit 2; }
[ -n "${train_set}" ] && [ -n "${valid_set}" ] || { log "Error: --train_set and --valid_set are required"; exit 2; }
[ -n "${tag}" ] || tag=$(basename "${asr_config}" .yaml)_${token_type}
exp=${expdir}/${tag}
if [ -n "${speed_perturb_factors}" ]; then train_used=${train_set}_sp; else train_used=${train_set}; fi
token_dir=data/token_list/${token_type}

if [ ${stage} -le 1 ] && [ ${stop_stage} -ge 1 ]; then
    log "Stage 1: data preparation"
    local/data.sh ${local_data_opts}
    for s in ${train_set} ${valid_set} ${test_sets}; do utils/validate_data_dir.sh --no-feats "data/${s}"; done
fi

if [ ${stage} -le 2 ] && [ ${stop_stage} -ge 2 ]; then
    log "Stage 2: audio formatting (${fs} Hz, minimum ${min_duration} s)"
    for s in ${train_set} ${valid_set} ${test_sets}; do
        speechser-format-audio "data/${s}" "${dumpdir}/raw/${s}" --audio-dir "${dumpdir}/raw/${s}/wav" \
            --rate "${fs}" --min-duration "${min_duration}"
    done
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
    for s in ${train_used} ${valid_set} ${test_sets}; do
        utils/make_fbank.sh --nj "${nj}" --cmd "${feats_cmd}" --num_mel_bins "${num_mel_bins}" \
            "${dumpdir}/raw/${s}" "${dumpdir}/fbank/${s}"
    done
    speechser-compute-cmvn "${dumpdir}/fbank/${train_used}"
fi

if [ ${stage} -le 5 ] && [ ${stop_stage} -ge 5 ]; then
    log "Stage 5: ${token_type} token list from ${train_set} -> ${token_dir}"
    speechser-make-tokens "${dumpdir}/raw/${train_set}/text" "${token_dir}" --token-type "${token_type}" \
        --vocab-size "${nbpe}"
fi

if [ "${token_type}" = char ]; then
    token_args="--data.token_type char --data.token_list ${token_dir}/tokens.txt"
else
    token_args="--data.token_type sentencepiece --data.bpe_model ${token_dir}/bpe.model"
fi

if [ ${stage} -le 6 ] && [ ${stop_stage} -ge 6 ]; then
    log "Stage 6: ASR training -> ${exp}"
    mkdir -p "${exp}/logs"
    stage_start=${SECONDS}
    ${train_cmd} --num-threads "${nj}" "${exp}/logs/train.log" \
        speechser-train-asr --config "${asr_config}" --exp-dir "${exp}" \
        --data.train_dir "${dumpdir}/fbank/${train_used}" --data.valid_dir "${dumpdir}/fbank/${valid_set}" \
        --data.cmvn_type global --data.cmvn_stats "${dumpdir}/fbank/${train_used}/cmvn.ark" \
        ${token_args} ${asr_args}
    echo "$((SECONDS - stage_start))" > "${exp}/logs/train.elapsed"
fi

if [ ${stage} -le 7 ] && [ ${stop_stage} -ge 7 ]; then
    log "Stage 7: decoding (${decoders}) with ${inference_model}"
    for dec in ${decoders}; do
        for s in ${valid_set} ${test_sets}; do
            ${infer_cmd} --num-threads "${nj}" "${exp}/logs/decode_${dec}_${s}.log" \
                speechser-decode-asr --exp-dir "${exp}" --checkpoint "${exp}/${inference_model}" \
                --data-dir "${dumpdir}/fbank/${s}" --out-dir "${exp}/decode_${dec}_${s}" \
                --decoder "${dec}" --beam "${beam_size}"
        done
    done
fi

if [ ${stage} -le 8 ] && [ ${stop_stage} -ge 8 ]; then
    log "Stage 8: scoring -> ${results_md}"
    dirs=$(for dec in ${decoders}; do for s in ${valid_set} ${test_sets}; do echo "${exp}/decode_${dec}_${s}"; done; done)
    timing=""
    [ -f "${exp}/logs/train.elapsed" ] && timing="training wall time $(cat "${exp}/logs/train.elapsed") s;"
    speechser-score-asr --results-md "${results_md}" --tag "${tag}" --title "${tag}" --command "${cmdline}" \
        --notes "${timing} model ${inference_model}; no language model" \
        --header "# RESULTS: $(basename "$(dirname "$PWD")")/$(basename "$PWD")" ${dirs}
fi

if [ ${stage} -le 9 ] && [ ${stop_stage} -ge 9 ] && [ -n "${filter_config}" ]; then
    log "Stage 9: data filter loop (${filter_config}) from ${exp}/${inference_model} -> ${exp}/filter"
    mkdir -p "${exp}/filter/logs"
    stage_start=${SECONDS}
    ${train_cmd} --num-threads "${nj}" "${exp}/filter/logs/filter_loop.log" \
        speechser-filter-loop --config "${filter_config}" --asr-exp "${exp}" --checkpoint "${exp}/${inference_model}" \
        --train-dir "${dumpdir}/fbank/${train_used}" --valid-dir "${dumpdir}/fbank/${valid_set}" \
        $(for s in ${test_sets}; do echo "--test-dir ${dumpdir}/fbank/${s}"; done) --out-dir "${exp}/filter" ${filter_args}
    python3 - "${exp}/filter/rounds.tsv" "${results_md}" "$(basename "$(dirname "$PWD")")/$(basename "$PWD")" \
        "${cmdline}" "$((SECONDS - stage_start))" "${filter_config}" <<'PY'
import sys
from speechser.filter.loop import rounds_markdown
from speechser.metrics.report import environment_line, replace_section
rounds, md, name, cmd, secs, conf = sys.argv[1:]
body = "\n".join([
    f"## data filter loop ({conf})", "",
    f"- environment: {environment_line()}", f"- command: `{cmd}`", f"- wall time {secs} s", "",
    "Round 0 is the model above; each later round decodes the whole training set with the previous",
    "round's model, keeps the utterances inside the bounds and retrains (CTC greedy WER, %).", "",
    rounds_markdown(rounds)])
replace_section(md, "filter-rounds", body, f"# RESULTS: {name}")
PY
fi

log "Successfully finished. [elapsed=${SECONDS}s]"
