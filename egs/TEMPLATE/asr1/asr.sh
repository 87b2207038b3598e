#!/usr/bin/env bash
# Shared stage script of the ASR recipes (egs/<corpus>/asr1/run.sh calls it with "$@").
#
# Stages (each guarded; run any range with --stage N --stop_stage M):
#   1  data preparation      local/data.sh -> data/{train_set,valid_set,test_sets} (validated)
#   2  audio formatting      resample to ${fs} Hz, drop empty/too-short utterances -> dump/raw/<set>
#   3  speed perturbation    ${speed_perturb_factors} copies of the training set -> dump/raw/<train_set>_sp
#   4  features              log-Mel fbank over ${nj} jobs; global CMVN of the training set -> dump/fbank/<set>
#                            (training and decoding jobs use ${threads_per_job} threads each)
#   5  token list            grapheme list or sentencepiece model from the training text -> data/token_list/<char|bpeN|unigramN>
#   6  ASR training          exp/<asr_tag>/
#   7  data filter loop      (with --filter_config) decode the training set, keep utterances by WER and CTC
#                            confidence, retrain, repeat -> exp/<asr_tag>/filter/round<r>, rounds table in RESULTS.md;
#                            the final model is then the last round's (without --filter_config: stage 6's)
#   8  decoding              the final model with each decoder of --decoders (default: every decoder its branches
#                            allow: ctc_* with a CTC head, rnnt_* with a transducer) on valid and test sets
#                            -> <final experiment>/decode_<dec>_<set>
#   9  scoring               WER/CER tables -> RESULTS.md
#  10  packing               the final model with the decoder of lowest WER on ${valid_set} as one archive
#                            -> exp/<asr_tag>/packed/model.tar (speechser-infer, speechser.Speech2TextEmotion)
# The steps are the functions of utils/stage_lib.sh, shared with ser.sh and asr_ser.sh.
set -euo pipefail

. utils/log.sh
SECONDS=0
cmdline="$0$(printf ' %q' "$@")"  # quoted: it pastes back as it was typed

stage=1                    # first stage to run
stop_stage=100             # last stage to run
nj=2                       # feature extraction jobs (capped at the number of speakers: a job holds whole speakers)
threads_per_job=2          # CPU threads of each training and decoding job (OMP_NUM_THREADS)
ngpu=1                     # training processes per node: 0 CPU, 1 one process (a GPU if any), N > 1 torchrun (DDP)
num_nodes=1                # training nodes; > 1 needs train_cmd=utils/slurm.pl in cmd.sh (one torchrun per node)
dumpdir=dump               # formatted audio and features -> ${dumpdir}/raw, ${dumpdir}/fbank
expdir=exp                 # experiments -> ${expdir}/<tag>
fs=16000                   # sample rate the audio is resampled to
min_duration=0.1           # seconds; shorter utterances are dropped (counted, logged) in stage 2
num_mel_bins=80            # fbank channels (25 ms window, 10 ms shift)
local_data_opts=""         # options passed to local/data.sh
train_set=""               # required: a data directory under data/ (wav.scp, utt2spk, spk2utt, text)
valid_set=""               # required: held-out data for model selection (see "no dev set" in the error)
test_sets=""               # zero or more sets, each decoded and scored
speed_perturb_factors=""   # e.g. "0.9 1.1" (the original is always kept)
token_type=char            # char | bpe | unigram
nbpe=30                    # sentencepiece vocabulary size (bpe, unigram)
asr_config=conf/train.yaml # training config (model, trainer, data options)
asr_args=""                # extra --key value overrides for speechser-train-asr
asr_tag=""                 # experiment tag (default: <asr_config name>_<token name>: char, bpe128, ...)
asr_model=""               # a weights file of exp/<asr_tag> (and of each filter round), e.g. valid.acc.ave_10best.pt;
                           # "" = its averaged (else best) model
decoders=""                # decoders of stage 8 (and the candidates of stage 10), e.g. "ctc_greedy ctc_beam";
                           # "" = all the model has: ctc_greedy ctc_beam (CTC head), rnnt_greedy rnnt_beam (transducer)
beam_size=10               # beam of ctc_beam and rnnt_beam
results_md=""              # the results file the scoring stages write sections of; "" = ${expdir}/RESULTS.md, this
                           # run's own (the recipe's RESULTS.md is the published copy: --results_md RESULTS.md)
filter_config=""           # e.g. conf/filter.yaml (stage 7 runs only with it)
filter_args=""             # extra --key value overrides of ${filter_config}
threads=""                 # former name of --threads_per_job (still accepted, with a warning)
tag=""                     # former name of --asr_tag (still accepted, with a warning)
inference_model=""         # former name of --asr_model (still accepted, with a warning)

help_message="Usage: $0 --train_set S --valid_set S --test_sets \"S ...\" [--stage N] [--stop_stage M] [options]"

log "$0 $*"
. ./path.sh
. ./cmd.sh
. utils/parse_options.sh
. utils/stage_lib.sh
[ -n "${results_md}" ] || results_md=${expdir}/RESULTS.md  # a run never rewrites the published results
renamed_option threads "${threads}" threads_per_job
renamed_option tag "${tag}" asr_tag
renamed_option inference_model "${inference_model}" asr_model

[ $# -eq 0 ] || { log "Error: unexpected arguments: $*"; exit 2; }
[ -n "${train_set}" ] || { log "Error: --train_set is required (a data directory under data/)"; exit 2; }
if [ -z "${valid_set}" ]; then
    log "Error: --valid_set is required: model selection and averaging use it. A corpus without a dev set carves one"
    log "       from its training data in its data preparation (egs/TEMPLATE/README.md, No dev set), e.g. 100 utterances:"
    log "       utils/subset_data_dir.sh data/all 100 data/dev"
    log "       utils/filter_scp --exclude data/dev/utt2spk data/all/utt2spk > data/train.list"
    log "       utils/subset_data_dir.sh --utt-list data/train.list data/all data/train"
    exit 2
fi
[ -n "${asr_tag}" ] || asr_tag=$(default_tag "${asr_config}" "$(token_name "${token_type}" "${nbpe}")")
exp=${expdir}/${asr_tag}
if [ -n "${speed_perturb_factors}" ]; then train_used=${train_set}_sp; else train_used=${train_set}; fi
# the option strings and lists, as words (utils/stage_lib.sh: split_words)
tests=() factors=() asr_argv=() filter_argv=()
split_words tests "${test_sets}"
split_words factors "${speed_perturb_factors}"
split_words asr_argv "${asr_args}"
split_words filter_argv "${filter_args}"

if [ "${stage}" -le 1 ] && [ "${stop_stage}" -ge 1 ]; then
    log "Stage 1: data preparation"
    prepare_data --no-feats "${train_set}" "${valid_set}" "${tests[@]}"
fi

if [ "${stage}" -le 2 ] && [ "${stop_stage}" -ge 2 ]; then
    log "Stage 2: audio formatting (${fs} Hz, minimum ${min_duration} s)"
    format_audio "${train_set}" "${valid_set}" "${tests[@]}"
fi

if [ "${stage}" -le 3 ] && [ "${stop_stage}" -ge 3 ] && [ -n "${speed_perturb_factors}" ]; then
    log "Stage 3: speed perturbation ${speed_perturb_factors} -> ${dumpdir}/raw/${train_set}_sp"
    parts=("${dumpdir}/raw/${train_set}")
    for f in "${factors[@]}"; do
        speechser-speed-perturb "${dumpdir}/raw/${train_set}" "${dumpdir}/raw/${train_set}_sp${f}" \
            --audio-dir "${dumpdir}/raw/${train_set}_sp${f}/wav" --factor "${f}"
        parts+=("${dumpdir}/raw/${train_set}_sp${f}")
    done
    rm -rf "${dumpdir}/raw/${train_set}_sp"
    utils/combine_data.sh "${dumpdir}/raw/${train_set}_sp" "${parts[@]}"
    utils/validate_data_dir.sh --no-feats "${dumpdir}/raw/${train_set}_sp"
fi

if [ "${stage}" -le 4 ] && [ "${stop_stage}" -ge 4 ]; then
    log "Stage 4: fbank (${num_mel_bins} bins) over ${nj} jobs; global CMVN of ${train_used}"
    make_features "${train_used}" "${train_used}" "${valid_set}" "${tests[@]}"
fi

if [ "${stage}" -le 5 ] && [ "${stop_stage}" -ge 5 ]; then
    log "Stage 5: ${token_type} token list from ${train_set} -> data/token_list/$(token_name "${token_type}" "${nbpe}")"
    make_tokens "${train_set}" "${token_type}" "${nbpe}"
fi

if [ "${stage}" -le 6 ] && [ "${stop_stage}" -ge 6 ]; then
    log "Stage 6: ASR training -> ${exp}"
    mapfile -t tok < <(token_args "${token_type}" "${nbpe}")
    train_asr "${exp}" "${asr_config}" "${train_used}" "${valid_set}" "${tok[@]}" "${asr_argv[@]}"
    mkdir -p "${exp}/logs" && echo "${cmdline}" > "${exp}/logs/train.command"  # the training command, for the reports
fi

if [ "${stage}" -le 7 ] && [ "${stop_stage}" -ge 7 ] && [ -n "${filter_config}" ]; then
    model=$(model_path "${exp}" "${asr_model}") || exit 1
    log "Stage 7: data filter loop (${filter_config}) from ${model} -> ${exp}/filter"
    filter_loop "${exp}" "${model}" "${filter_config}" "${train_used}" "${valid_set}" "${test_sets}" \
        "${filter_argv[@]}"
    report_filter_rounds "${exp}" "${filter_config}"
fi

if [ "${stage}" -le 8 ] && [ "${stop_stage}" -ge 8 ]; then
    final_asr_model "${exp}" "${asr_model}" "${filter_config}"
    use_model_decoders "${final_exp}"
    log "Stage 8: decoding (${decoders}) with ${final_ckpt}"
    decode_asr "${final_exp}" "${final_ckpt}" "${decoders}" "${valid_set}" "${tests[@]}"
fi

if [ "${stage}" -le 9 ] && [ "${stop_stage}" -ge 9 ]; then
    log "Stage 9: scoring -> ${results_md}"
    final_asr_model "${exp}" "${asr_model}" "${filter_config}"
    use_model_decoders "${final_exp}"
    timing=""
    [ -f "${exp}/logs/train.elapsed" ] && timing="the last run of stage 6 took $(cat "${exp}/logs/train.elapsed") s;"
    train_command=$(cat "${exp}/logs/train.command" 2> /dev/null || true)
    [ "${final_exp}" = "${exp}" ] || timing="${timing} the data filter loop's final model (${final_exp});"
    mapfile -t dirs < <(decode_dirs "${final_exp}" "${decoders}" "${valid_set}" "${tests[@]}")
    score_asr "${asr_tag}" "${asr_tag}" "${timing} model $(basename "${final_ckpt}"); no language model" "${dirs[@]}"
fi

if [ "${stage}" -le 10 ] && [ "${stop_stage}" -ge 10 ]; then
    final_asr_model "${exp}" "${asr_model}" "${filter_config}"
    use_model_decoders "${final_exp}"
    log "Stage 10: packing ${final_ckpt} -> ${exp}/packed/model.tar"
    mkdir -p "${exp}/packed" "${exp}/logs"
    pack_opts=(--corpus "$(recipe_name)" --min-duration "${min_duration}" --beam "${beam_size}")
    mapfile -t dirs < <(decode_dirs "${final_exp}" "${decoders}" "${valid_set}")
    pack_opts+=(--choose-decoder-from "${dirs[@]}")
    [ ! -f "${results_md}" ] || pack_opts+=(--results "${results_md}")
    speechser-pack --task asr --exp-dir "${final_exp}" --checkpoint "${final_ckpt}" --out "${exp}/packed/model.tar" \
        "${pack_opts[@]}" > "${exp}/logs/pack.log" 2>&1 \
        || { log "Error: packing failed; see ${exp}/logs/pack.log"; tail -n 2 "${exp}/logs/pack.log" >&2; exit 1; }
fi

log "Successfully finished. [elapsed=${SECONDS}s]"
