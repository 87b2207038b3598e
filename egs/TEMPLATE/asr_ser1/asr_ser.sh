#!/usr/bin/env bash
# Shared stage script of the multi-stage ASR + SER system (egs/<corpus>/asr_ser1/run.sh calls it with "$@").
# It composes the steps of asr.sh and ser.sh: all three call the functions of utils/stage_lib.sh, and use
# the same option names and layout (--test_sets, experiments in exp/<tag>, decodes in <experiment>/decode_*).
#
# Stages (each guarded; run any range with --stage N --stop_stage M):
#    1  data preparation   local/data.sh -> data/{train,dev,<test_sets>} (+ data/emotions.txt), validated
#    2  audio formatting   resample to ${fs} Hz, drop empty and < ${min_duration} s utterances -> dump/raw/<set>
#    3  features           ${num_mel_bins}-bin fbank over ${nj} jobs; global CMVN of train -> dump/fbank/<set>
#                          (the paper's front-end: 128 bins, 25 ms / 10 ms, utterances < 0.5 s dropped)
#    4  token list         grapheme list from the training text -> data/token_list/char/tokens.txt
#    5  BEST-RQ            self-supervised pre-training of the Conformer encoder -> exp/<bestrq_tag>
#                          (skipped when --bestrq_config is empty)
#    6  ASR                Conformer CTC + RNN-T, encoder initialized from BEST-RQ -> exp/<asr_tag>
#    7  data filter loop   decode train, keep by WER/CTC confidence, retrain -> exp/<asr_tag>/filter/round<r>,
#                          rounds.tsv (skipped when --filter_config is empty; the final ASR is then exp/<asr_tag>)
#    8  SER                emotion model fused with the final ASR encoder -> exp/<ser_tag>
#    9  k-NN               SER decoding of each test set with and without k-NN interpolation (grid: --knn_config,
#                          tuned on dev) -> exp/<ser_tag>/{decode_<set>,knn/<set>}
#   10  ASR decoding       the final ASR model on the test sets -> <final ASR experiment>/decode_<asr_decoder>_<set>
#   11  scoring            WER, ACC_SER (2-class balanced), Final = 0.7 (1 - WER) + 0.3 ACC_SER; the filter
#                          rounds -> RESULTS.md
#   12  packing            the final ASR model and the SER model as one archive for one-pass inference
#                          -> exp/<ser_tag>/packed/joint.tar (speechser-infer, speechser.Speech2TextEmotion)
# Tags: <asr_tag> defaults to <asr_config name>_<token_type> (as in asr.sh), <ser_tag> and <bestrq_tag>
# to their configs' names (as in ser.sh).
set -euo pipefail

. utils/log.sh
SECONDS=0
cmdline="$0$(printf ' %q' "$@")"  # quoted: it pastes back as it was typed

stage=1              # first stage to run
stop_stage=100       # last stage to run
nj=2                  # feature extraction jobs (capped at the number of speakers)
threads_per_job=2     # CPU threads of each training, decoding and k-NN job
ngpu=1                # training processes per node: 0 CPU, 1 one process (a GPU if any), N > 1 torchrun (DDP)
num_nodes=1           # training nodes; > 1 needs train_cmd=utils/slurm.pl in cmd.sh (one torchrun per node)
dumpdir=dump         # formatted audio and features -> ${dumpdir}/raw, ${dumpdir}/fbank
expdir=exp           # experiments -> ${expdir}/<tag>
fs=16000             # sample rate the audio is resampled to
min_duration=0.5      # seconds; the paper drops utterances shorter than 0.5 s
num_mel_bins=128      # the paper's 128-channel filterbank (25 ms window, 10 ms shift)
noise_scp=""          # Kaldi wav.scp of noise recordings for on-the-fly additive noise (data.augment.noise)
rir_scp=""            # Kaldi wav.scp of room impulse responses for on-the-fly reverberation (data.augment.reverb)
local_data_opts=""   # options passed to local/data.sh
train_set=train      # data/<set> names (wav.scp, utt2spk, text, utt2emo)
valid_set=dev        # held-out set: model selection, averaging, k-NN tuning
test_sets="test"       # one or more sets, each decoded and scored
token_type=char        # char | bpe | unigram (as in asr.sh)
nbpe=30              # sentencepiece vocabulary size (bpe, unigram)
bestrq_config=conf/pretrain_bestrq.yaml  # BEST-RQ pre-training config; "" skips stage 5
bestrq_args=""       # extra --key value overrides for the BEST-RQ training
bestrq_model=""       # a weights file of the BEST-RQ experiment; "" = its averaged (else best) model
bestrq_tag=""          # default: the config's name
asr_config=conf/train_asr.yaml  # ASR training config
asr_args=""          # extra --key value overrides for speechser-train-asr
asr_model=""          # a weights file of the ASR experiment (and of each filter round); "" = its averaged model
asr_tag=""             # default: <config name>_<token name>: char, bpe128, ...
filter_config=conf/filter.yaml  # data filter loop config; "" skips stage 7
filter_args=""       # extra --key value overrides of ${filter_config}
ser_config=conf/train_ser.yaml  # SER training config
ser_args=""          # extra --key value overrides for speechser-train-ser
ser_model=""          # a weights file of the SER experiment; "" = its averaged (else best) model
ser_tag=""             # default: the config's name
knn_config=conf/knn.yaml  # the k-NN grid (betas, ks, temperatures) and search backend; "" = the tool's defaults
knn_backend=""         # torch | faiss: overrides the backend of ${knn_config}
knn_args=""            # extra --key value overrides of ${knn_config} for speechser-knn-ser, e.g. "--ks [4,8]"
asr_decoder=ctc_greedy  # ctc_greedy | ctc_beam | rnnt_greedy | rnnt_beam
beam_size=10         # beam of the beam-search decoders
label_map=conf/label_map.yaml  # corpus labels -> the 2 challenge classes (ACC_SER)
results_md=""          # the results file the scoring stages write sections of; "" = ${expdir}/RESULTS.md, this
                       # run's own (the recipe's RESULTS.md is the published copy: --results_md RESULTS.md)
threads=""            # former name of --threads_per_job (still accepted, with a warning)

help_message="Usage: $0 [--stage N] [--stop_stage M] [--test_sets \"S ...\"] [--bestrq_config F] [--asr_config F] [--filter_config F] [--ser_config F] [--knn_config F] [--noise_scp F] [--rir_scp F] [--*_tag T] [--*_args \"--key value ...\"]"

log "$0 $*"
. ./path.sh
. ./cmd.sh
. utils/parse_options.sh
. utils/stage_lib.sh
[ -n "${results_md}" ] || results_md=${expdir}/RESULTS.md  # a run never rewrites the published results
renamed_option threads "${threads}" threads_per_job

[ $# -eq 0 ] || { log "Error: unexpected arguments: $*"; exit 2; }
[ -n "${test_sets}" ] || { log "Error: --test_sets is empty"; exit 2; }
sets="${train_set} ${valid_set} ${test_sets}"
# the lists and option strings, as words (utils/stage_lib.sh: split_words)
set_list=() tests=() bestrq_argv=() asr_argv=() filter_argv=() ser_argv=()
split_words set_list "${sets}"
split_words tests "${test_sets}"
split_words bestrq_argv "${bestrq_args}"
split_words asr_argv "${asr_args}"
split_words filter_argv "${filter_args}"
split_words ser_argv "${ser_args}"
feats=${dumpdir}/fbank
[ -n "${bestrq_tag}" ] || bestrq_tag=$(default_tag "${bestrq_config}")
[ -n "${asr_tag}" ] || asr_tag=$(default_tag "${asr_config}" "$(token_name "${token_type}" "${nbpe}")")
[ -n "${ser_tag}" ] || ser_tag=$(default_tag "${ser_config}")
bestrq_exp=${expdir}/${bestrq_tag}
asr_exp=${expdir}/${asr_tag}
ser_exp=${expdir}/${ser_tag}

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
    if [ -n "${noise_scp}" ]; then
        log "Augmentation: noise recordings from ${noise_scp}"
    else
        log "Augmentation: no --noise_scp: additive noise disabled (data.augment.noise.prob 0)"
    fi
    if [ -n "${rir_scp}" ]; then
        log "Augmentation: room impulse responses from ${rir_scp}"
    else
        log "Augmentation: no --rir_scp: reverberation disabled (data.augment.reverb.prob 0)"
    fi
}

# The ASR model later stages use, set as final_exp and final_ckpt: the filter loop's last retrained round,
# else exp/<asr_tag>'s model (--asr_model, default the one its training wrote); exits when there is none.

if [ "${stage}" -le 1 ] && [ "${stop_stage}" -ge 1 ]; then
    log "Stage 1: data preparation -> data/{${sets// /,}}"
    prepare_data "--no-feats --labels utt2emo=data/emotions.txt" "${set_list[@]}"
fi

if [ "${stage}" -le 2 ] && [ "${stop_stage}" -ge 2 ]; then
    log "Stage 2: audio formatting (${fs} Hz, minimum ${min_duration} s)"
    format_audio "${set_list[@]}"
fi

if [ "${stage}" -le 3 ] && [ "${stop_stage}" -ge 3 ]; then
    log "Stage 3: fbank (${num_mel_bins} bins) over ${nj} jobs; global CMVN of ${train_set}"
    make_features "${train_set}" "${set_list[@]}"
fi

if [ "${stage}" -le 4 ] && [ "${stop_stage}" -ge 4 ]; then
    log "Stage 4: ${token_type} token list from ${train_set} -> data/token_list/$(token_name "${token_type}" "${nbpe}")"
    make_tokens "${train_set}" "${token_type}" "${nbpe}"
fi

if [ "${stage}" -le 5 ] && [ "${stop_stage}" -ge 5 ] && [ -n "${bestrq_config}" ]; then
    log "Stage 5: BEST-RQ pre-training -> ${bestrq_exp}"
    mapfile -t tok < <(token_args "${token_type}" "${nbpe}")
    train_asr "${bestrq_exp}" "${bestrq_config}" "${train_set}" "${valid_set}" "${tok[@]}" "${bestrq_argv[@]}"
fi

if [ "${stage}" -le 6 ] && [ "${stop_stage}" -ge 6 ]; then
    init=()
    if [ -n "${bestrq_config}" ]; then
        bestrq=$(model_path "${bestrq_exp}" "${bestrq_model}") || { log "Error: run stage 5 (BEST-RQ) first"; exit 1; }
        init=(--trainer.init_param "[${bestrq}:encoder.]")
    fi
    log "Stage 6: ASR training -> ${asr_exp}${bestrq_config:+ (encoder from BEST-RQ)}"
    augment_note
    mapfile -t tok < <(token_args "${token_type}" "${nbpe}")
    train_asr "${asr_exp}" "${asr_config}" "${train_set}" "${valid_set}" "${tok[@]}" "${init[@]}" \
        "${augment_args[@]}" "${asr_argv[@]}"
    mkdir -p "${asr_exp}/logs" && echo "${cmdline}" > "${asr_exp}/logs/train.command"  # the training command, for the reports
fi

if [ "${stage}" -le 7 ] && [ "${stop_stage}" -ge 7 ] && [ -n "${filter_config}" ]; then
    log "Stage 7: data filter loop -> ${asr_exp}/filter"
    model=$(model_path "${asr_exp}" "${asr_model}") || exit 1
    filter_loop "${asr_exp}" "${model}" "${filter_config}" "${train_set}" "${valid_set}" "${test_sets}" \
        --checkpoint_name "${asr_model}" "${filter_argv[@]}"
    cat "${asr_exp}/filter/rounds.tsv"
fi

if [ "${stage}" -le 8 ] && [ "${stop_stage}" -ge 8 ]; then
    final_asr_model "${asr_exp}" "${asr_model}" "${filter_config}"
    log "Stage 8: SER training with the ASR encoder of ${final_ckpt} -> ${ser_exp}"
    augment_note
    train_ser "${ser_exp}/logs/train.log" "${ser_exp}" "${ser_config}" "${feats}/${train_set}" \
        "${feats}/${valid_set}" data/emotions.txt --data.cmvn_type global --data.cmvn_stats "${feats}/${train_set}/cmvn.ark" \
        --model.conf.asr_exp_dir "${final_exp}" --model.conf.asr_checkpoint "$(basename "${final_ckpt}")" \
        "${augment_args[@]}" "${ser_argv[@]}"
fi

if [ "${stage}" -le 9 ] && [ "${stop_stage}" -ge 9 ]; then
    log "Stage 9: SER decoding of ${test_sets}, without and with k-NN interpolation (tuned on ${valid_set})"
    check_knn_config
    test_dirs=()
    for s in "${tests[@]}"; do
        infer_ser "${ser_exp}/logs/infer_${s}.log" "${ser_exp}" "${ser_model}" "${feats}/${s}" \
            "${ser_exp}/decode_${s}"
        test_dirs+=("${feats}/${s}")
    done
    knn_ser "${ser_exp}/logs/knn.log" "${ser_exp}" "${ser_model}" "${feats}/${train_set}" \
        "${feats}/${valid_set}" "${ser_exp}/knn" "${test_dirs[@]}"
fi

if [ "${stage}" -le 10 ] && [ "${stop_stage}" -ge 10 ]; then
    final_asr_model "${asr_exp}" "${asr_model}" "${filter_config}"
    log "Stage 10: ASR decoding (${asr_decoder}) of ${test_sets} with ${final_ckpt}"
    decode_asr "${final_exp}" "${final_ckpt}" "${asr_decoder}" "${tests[@]}"
fi

if [ "${stage}" -le 11 ] && [ "${stop_stage}" -ge 11 ]; then
    log "Stage 11: challenge scores -> ${results_md}"
    final_asr_model "${asr_exp}" "${asr_model}" "${filter_config}"
    ntest=${#tests[@]}
    for s in "${tests[@]}"; do
        suffix=""
        [ "${ntest}" -eq 1 ] || suffix="-${s}"
        for variant in "decode_${s}:ser" "knn/${s}:ser+knn"; do
            dir=${variant%%:*}
            name=${variant##*:}
            speechser-score-challenge --asr-dir "${final_exp}/decode_${asr_decoder}_${s}" --ser-dir "${ser_exp}/${dir}" \
                --label-map "${label_map}" --results-md "${results_md}" --tag "challenge-${name}${suffix}" \
                --title "${s}: ASR ${asr_decoder} + ${name}" --command "${cmdline}" --header "$(results_header)" \
                --notes "ASR ${final_ckpt}; SER ${ser_exp}/${ser_model:-<averaged model>}; no language model"
        done
    done
    notes="no language model"
    if [ -n "${filter_config}" ] && [ -f "${asr_exp}/filter/rounds.tsv" ]; then
        report_filter_rounds "${asr_exp}" "${filter_config}"
        notes="${notes}; data filter rounds: section filter-rounds"
    fi
    mapfile -t dirs < <(decode_dirs "${final_exp}" "${asr_decoder}" "${tests[@]}")
    train_command=$(cat "${asr_exp}/logs/train.command" 2> /dev/null || true)
    score_asr asr "final ASR on ${test_sets}" "${notes}" "${dirs[@]}"
fi

if [ "${stage}" -le 12 ] && [ "${stop_stage}" -ge 12 ]; then
    final_asr_model "${asr_exp}" "${asr_model}" "${filter_config}"
    log "Stage 12: packing ${final_ckpt} (${asr_decoder}) and ${ser_exp}/${ser_model:-<averaged model>} -> ${ser_exp}/packed/joint.tar"
    mkdir -p "${ser_exp}/packed" "${ser_exp}/logs"
    pack_opts=(--corpus "$(recipe_name)" --min-duration "${min_duration}" --decoder "${asr_decoder}" --beam "${beam_size}")
    [ ! -f "${results_md}" ] || pack_opts+=(--results "${results_md}")
    [ -z "${ser_model}" ] || pack_opts+=(--checkpoint "${ser_model}")
    speechser-pack --task asr_ser --exp-dir "${ser_exp}" --asr-exp-dir "${final_exp}" \
        --asr-checkpoint "${final_ckpt}" --out "${ser_exp}/packed/joint.tar" "${pack_opts[@]}" \
        > "${ser_exp}/logs/pack.log" 2>&1 \
        || { log "Error: packing failed; see ${ser_exp}/logs/pack.log"; tail -n 2 "${ser_exp}/logs/pack.log" >&2; exit 1; }
fi

log "Successfully finished. [elapsed=${SECONDS}s]"
