#!/usr/bin/env bash
# Shared stage script of the multi-stage ASR + SER system (egs/<corpus>/asr_ser1/run.sh calls it with "$@").
#
# Stages (each guarded; run any range with --stage N --stop_stage M):
#    1  data preparation   local/data.sh -> data/{train,dev,test} (+ data/emotions.txt), validated
#    2  audio formatting   resample to ${fs} Hz, drop empty and < ${min_duration} s utterances -> dump/raw/<set>
#    3  features           ${num_mel_bins}-bin fbank over ${nj} jobs; global CMVN of train -> dump/fbank/<set>
#                          (the paper's front-end: 128 bins, 25 ms / 10 ms, utterances < 0.5 s dropped)
#    4  token list         grapheme list from the training text -> data/token_list/char/tokens.txt
#    5  BEST-RQ            self-supervised pre-training of the Conformer encoder -> exp/bestrq
#                          (skipped when --bestrq_config is empty)
#    6  ASR                Conformer CTC + RNN-T, encoder initialized from BEST-RQ -> exp/asr
#    7  data filter loop   decode train, keep by WER/CTC confidence, retrain -> exp/filter/round<r>, rounds.tsv
#                          (skipped when --filter_config is empty; the final ASR is then exp/asr)
#    8  SER                emotion model fused with the final ASR encoder -> exp/ser
#    9  k-NN               SER decoding with and without k-NN interpolation (tuned on dev) -> exp/ser/{decode_test,knn}
#   10  ASR decoding       the final ASR model on the test set -> exp/decode_asr_test
#   11  scoring            WER, ACC_SER (2-class balanced), Final = 0.7 (1 - WER) + 0.3 ACC_SER -> RESULTS.md
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
min_duration=0.5      # seconds; the paper drops utterances shorter than 0.5 s
num_mel_bins=128      # the paper's 128-channel filterbank (25 ms window, 10 ms shift)
noise_scp=""          # Kaldi wav.scp of noise recordings for on-the-fly additive noise (data.augment.noise)
rir_scp=""            # Kaldi wav.scp of room impulse responses for on-the-fly reverberation (data.augment.reverb)
local_data_opts=""
train_set=train
valid_set=dev
test_set=test
bestrq_config=conf/pretrain_bestrq.yaml
bestrq_args=""
bestrq_model=valid.acc.ave_5best.pt
asr_config=conf/train_asr.yaml
asr_args=""
asr_model=valid.acc.ave_5best.pt
filter_config=conf/filter.yaml
filter_args=""
ser_config=conf/train_ser.yaml
ser_args=""
ser_model=valid.ua.ave_5best.pt
knn_backend=torch
asr_decoder=ctc_greedy
beam_size=10
label_map=conf/label_map.yaml
results_md=RESULTS.md

help_message="Usage: $0 [--stage N] [--stop_stage M] [--bestrq_config F] [--asr_config F] [--filter_config F] [--ser_config F] [--noise_scp F] [--rir_scp F] [--*_args \"--key value ...\"]"

log "$0 $*"
. ./path.sh
. ./cmd.sh
. utils/parse_options.sh

[ $# -eq 0 ] || { log "Error: unexpected arguments: $*"; exit 2; }
sets="${train_set} ${valid_set} ${test_set}"
token_list=data/token_list/char/tokens.txt
feats=${dumpdir}/fbank
common_asr="--data.train_dir ${feats}/${train_set} --data.valid_dir ${feats}/${valid_set} --data.cmvn_type global
    --data.cmvn_stats ${feats}/${train_set}/cmvn.ark --data.token_type char --data.token_list ${token_list}"

# On-the-fly augmentation lists for ASR (stage 6, and the filter loop's retraining, which reuses its
# config) and SER (stage 8) training: a transform whose list is not given is turned off (probability 0),
# logged, so that the recipe runs without them; the configs' probabilities apply to those given.
augment_args=()
if [ -n "${noise_scp}" ]; then
    [ -f "${noise_scp}" ] || { log "Error: --noise_scp ${noise_scp}: no such file"; exit 1; }
    augment_args+=(--data.augment.noise.noise_scp "$(cd "$(dirname "${noise_scp}")" && pwd)/$(basename "${noise_scp}")")
else
    augment_args+=(--data.augment.noise.prob 0)
fi
if [ -n "${rir_scp}" ]; then
    [ -f "${rir_scp}" ] || { log "Error: --rir_scp ${rir_scp}: no such file"; exit 1; }
    augment_args+=(--data.augment.reverb.rir_scp "$(cd "$(dirname "${rir_scp}")" && pwd)/$(basename "${rir_scp}")")
else
    augment_args+=(--data.augment.reverb.prob 0)
fi
augment_note() {
    [ -n "${noise_scp}" ] && log "Augmentation: noise recordings from ${noise_scp}" \
        || log "Augmentation: no --noise_scp: additive noise disabled (data.augment.noise.prob 0)"
    [ -n "${rir_scp}" ] && log "Augmentation: room impulse responses from ${rir_scp}" \
        || log "Augmentation: no --rir_scp: reverberation disabled (data.augment.reverb.prob 0)"
}

# The ASR model later stages use: the filter loop's last retrained round, else exp/asr.
final_asr() {
    if [ -n "${filter_config}" ] && [ -f "${expdir}/filter/final_asr" ]; then
        cat "${expdir}/filter/final_asr"
    else
        echo "${expdir}/asr ${expdir}/asr/${asr_model}"
    fi
}

if [ ${stage} -le 1 ] && [ ${stop_stage} -ge 1 ]; then
    log "Stage 1: data preparation -> data/{${train_set},${valid_set},${test_set}}"
    local/data.sh ${local_data_opts}
    for s in ${sets}; do
        utils/validate_data_dir.sh --no-feats --labels "utt2emo=data/emotions.txt" "data/${s}"
    done
fi

if [ ${stage} -le 2 ] && [ ${stop_stage} -ge 2 ]; then
    log "Stage 2: audio formatting (${fs} Hz, minimum ${min_duration} s)"
    for s in ${sets}; do
        speechser-format-audio "data/${s}" "${dumpdir}/raw/${s}" --audio-dir "${dumpdir}/raw/${s}/wav" \
            --rate "${fs}" --min-duration "${min_duration}"
    done
fi

if [ ${stage} -le 3 ] && [ ${stop_stage} -ge 3 ]; then
    log "Stage 3: fbank (${num_mel_bins} bins) over ${nj} jobs; global CMVN of ${train_set}"
    for s in ${sets}; do
        utils/make_fbank.sh --nj "${nj}" --cmd "${feats_cmd}" --num_mel_bins "${num_mel_bins}" \
            "${dumpdir}/raw/${s}" "${feats}/${s}"
    done
    speechser-compute-cmvn "${feats}/${train_set}"
fi

if [ ${stage} -le 4 ] && [ ${stop_stage} -ge 4 ]; then
    log "Stage 4: grapheme list from ${train_set} -> ${token_list}"
    speechser-make-tokens "${dumpdir}/raw/${train_set}/text" "$(dirname "${token_list}")" --token-type char
fi

if [ ${stage} -le 5 ] && [ ${stop_stage} -ge 5 ] && [ -n "${bestrq_config}" ]; then
    log "Stage 5: BEST-RQ pre-training -> ${expdir}/bestrq"
    mkdir -p "${expdir}/bestrq/logs"
    ${train_cmd} --num-threads "${nj}" "${expdir}/bestrq/logs/train.log" \
        speechser-train-asr --config "${bestrq_config}" --exp-dir "${expdir}/bestrq" ${common_asr} ${bestrq_args}
fi

if [ ${stage} -le 6 ] && [ ${stop_stage} -ge 6 ]; then
    init=""
    if [ -n "${bestrq_config}" ]; then
        [ -f "${expdir}/bestrq/${bestrq_model}" ] || { log "Error: ${expdir}/bestrq/${bestrq_model} missing (stage 5)"; exit 1; }
        init="--trainer.init_param [${expdir}/bestrq/${bestrq_model}:encoder.]"
    fi
    log "Stage 6: ASR training -> ${expdir}/asr ${init:+(encoder from BEST-RQ)}"
    augment_note
    mkdir -p "${expdir}/asr/logs"
    ${train_cmd} --num-threads "${nj}" "${expdir}/asr/logs/train.log" \
        speechser-train-asr --config "${asr_config}" --exp-dir "${expdir}/asr" ${common_asr} ${init} \
        "${augment_args[@]}" ${asr_args}
fi

if [ ${stage} -le 7 ] && [ ${stop_stage} -ge 7 ] && [ -n "${filter_config}" ]; then
    log "Stage 7: data filter loop -> ${expdir}/filter"
    mkdir -p "${expdir}/filter/logs"
    ${train_cmd} --num-threads "${nj}" "${expdir}/filter/logs/filter_loop.log" \
        speechser-filter-loop --config "${filter_config}" --asr-exp "${expdir}/asr" \
        --checkpoint "${expdir}/asr/${asr_model}" --train-dir "${feats}/${train_set}" \
        --valid-dir "${feats}/${valid_set}" --test-dir "${feats}/${test_set}" --out-dir "${expdir}/filter" \
        --checkpoint_name "${asr_model}" ${filter_args}
    cat "${expdir}/filter/rounds.tsv"
fi

if [ ${stage} -le 8 ] && [ ${stop_stage} -ge 8 ]; then
    read -r asr_exp asr_ckpt <<< "$(final_asr)"
    log "Stage 8: SER training with the ASR encoder of ${asr_ckpt} -> ${expdir}/ser"
    augment_note
    mkdir -p "${expdir}/ser/logs"
    ${train_cmd} --num-threads "${nj}" "${expdir}/ser/logs/train.log" \
        speechser-train-ser --config "${ser_config}" --exp-dir "${expdir}/ser" \
        --data.train_dir "${feats}/${train_set}" --data.valid_dir "${feats}/${valid_set}" \
        --data.label_list data/emotions.txt --data.cmvn_type global --data.cmvn_stats "${feats}/${train_set}/cmvn.ark" \
        --model.conf.asr_exp_dir "${asr_exp}" --model.conf.asr_checkpoint "$(basename "${asr_ckpt}")" \
        "${augment_args[@]}" ${ser_args}
fi

if [ ${stage} -le 9 ] && [ ${stop_stage} -ge 9 ]; then
    log "Stage 9: SER decoding of ${test_set}, without and with k-NN interpolation (tuned on ${valid_set})"
    ${infer_cmd} --num-threads "${nj}" "${expdir}/ser/logs/infer.log" \
        speechser-infer-ser --exp-dir "${expdir}/ser" --checkpoint "${expdir}/ser/${ser_model}" \
        --data-dir "${feats}/${test_set}" --out-dir "${expdir}/ser/decode_${test_set}"
    ${infer_cmd} --num-threads "${nj}" "${expdir}/ser/logs/knn.log" \
        speechser-knn-ser --exp-dir "${expdir}/ser" --checkpoint "${expdir}/ser/${ser_model}" \
        --train-dir "${feats}/${train_set}" --valid-dir "${feats}/${valid_set}" --test-dir "${feats}/${test_set}" \
        --out-dir "${expdir}/ser/knn" --backend "${knn_backend}"
fi

if [ ${stage} -le 10 ] && [ ${stop_stage} -ge 10 ]; then
    read -r asr_exp asr_ckpt <<< "$(final_asr)"
    log "Stage 10: ASR decoding (${asr_decoder}) of ${test_set} with ${asr_ckpt}"
    ${infer_cmd} --num-threads "${nj}" "${expdir}/logs/decode_asr_${test_set}.log" \
        speechser-decode-asr --exp-dir "${asr_exp}" --checkpoint "${asr_ckpt}" --data-dir "${feats}/${test_set}" \
        --out-dir "${expdir}/decode_asr_${test_set}" --decoder "${asr_decoder}" --beam "${beam_size}"
fi

if [ ${stage} -le 11 ] && [ ${stop_stage} -ge 11 ]; then
    log "Stage 11: challenge scores -> ${results_md}"
    header="# RESULTS: $(basename "$(dirname "$PWD")")/$(basename "$PWD")"
    for variant in "decode_${test_set}:ser" "knn/${test_set}:ser+knn"; do
        dir=${variant%%:*}
        name=${variant##*:}
        speechser-score-challenge --asr-dir "${expdir}/decode_asr_${test_set}" --ser-dir "${expdir}/ser/${dir}" \
            --label-map "${label_map}" --results-md "${results_md}" --tag "challenge-${name}" \
            --title "${test_set}: ASR ${asr_decoder} + ${name}" --command "${cmdline}" --header "${header}" \
            --notes "ASR $(final_asr | cut -d' ' -f2); SER ${expdir}/ser/${ser_model}; no language model"
    done
    notes="no language model"
    if [ -f "${expdir}/filter/rounds.tsv" ]; then
        python3 - "${expdir}/filter/rounds.tsv" "${results_md}" "${header}" <<'PY'
import sys
from speechser.filter.loop import rounds_markdown
from speechser.metrics.report import replace_section
body = "## data filter rounds (WER of each round's model)\n\n" + rounds_markdown(sys.argv[1])
replace_section(sys.argv[2], "filter-rounds", body, sys.argv[3])
PY
        notes="${notes}; data filter rounds: section filter-rounds"
    fi
    speechser-score-asr --results-md "${results_md}" --tag asr --title "final ASR on ${test_set}" \
        --command "${cmdline}" --notes "${notes}" --header "${header}" "${expdir}/decode_asr_${test_set}"
fi

log "Successfully finished. [elapsed=${SECONDS}s]"
