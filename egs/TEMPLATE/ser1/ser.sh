#!/usr/bin/env bash
# Shared stage script of the SER recipes (egs/<corpus>/ser1/run.sh calls it with "$@").
#
# Stages (each guarded; run any range with --stage N --stop_stage M):
#   1  data preparation      local/data.sh -> data/all (validated)
#   2  audio formatting      resample to ${fs} Hz, drop empty/too-short utterances -> dump/raw/all
#   3  features              log-Mel fbank (or openSMILE: --feats_type) over ${nj} jobs, CMVN statistics
#                            -> dump/fbank/all (dump/<feats_type>_<opensmile_set>/all)
#   4  protocol folds        data/<protocol>/fold<K>/{train,valid,test}
#   5  SER training          one experiment per fold, ${train_jobs} at a time
#                            (--fusion_config: nothing to train; the members are experiments trained before)
#   6  inference             posteriors and hypotheses on each fold's test set (--decode_valid true: and on
#                            its valid set, which late fusion needs)
#                            (--fusion_config conf/fuse_*.yaml: late fusion of the members' decodes instead,
#                            weights chosen on each fold's valid set -> exp/<fusion tag>/<protocol>/fold<K>)
#                            (--knn true: also k-NN interpolated, datastore = the fold's train + valid,
#                            beta/k/temperature tuned on its valid set over the grid of --knn_config -> fold<K>/knn/test)
#   7  scoring               per-fold and averaged UA/WA/F1, confusion matrix, RESULTS.md
#   8  packing               each fold's model as one archive -> exp/<ser_tag>/<protocol>/packed/fold<K>.tar, which
#                            speechser-infer and the Python API (speechser.Speech2TextEmotion) use on any audio
#                            (--knn true: also fold<K>_knn.tar, decoding with the fold's datastore and tuned beta/k/T;
#                            --fusion_config: the members' archives and the fold's weights in one archive)
#   9  final model           one model on every speaker (dump/<features>/all) with the settings the folds chose
#                            on their validation sets (epochs, or C and hidden states: speechser-final-settings),
#                            packed -> exp/<ser_tag>/packed/model.tar, the archive to deploy (--final_model false: skip)
# The steps are the functions of utils/stage_lib.sh, shared with asr.sh and asr_ser.sh.
set -euo pipefail

. utils/log.sh
SECONDS=0
cmdline="$0$(printf ' %q' "$@")"  # quoted: it pastes back as it was typed

# General options
stage=1              # first stage to run
stop_stage=100       # last stage to run
nj=2                 # feature-extraction jobs
train_jobs=2         # folds trained at the same time
threads_per_job=1    # CPU threads of each training, inference and k-NN job
ngpu=1               # processes per node of each fold's training: 0 CPU, 1 one (a GPU if any), N > 1 torchrun (DDP)
num_nodes=1          # nodes of each fold's training; > 1 needs train_cmd=utils/slurm.pl in cmd.sh
dumpdir=dump         # formatted audio and features -> ${dumpdir}/raw, ${dumpdir}/fbank
expdir=exp           # experiments -> ${expdir}/<ser_tag>
fs=16000             # sample rate the audio is resampled to
min_duration=0.5     # seconds; shorter utterances are skipped (and counted) at stage 2
num_mel_bins=128     # fbank channels (25 ms window, 10 ms shift)
feats_type=fbank     # fbank | opensmile_functionals (1 x D per utterance) | opensmile_lld (frame descriptors) | ssl_functionals | ssl_frames
opensmile_set=eGeMAPSv02  # eGeMAPSv02 | ComParE_2016 (with an opensmile_* feats_type)
ssl_model=""         # with feats_type ssl_functionals | ssl_frames: a frozen encoder (hub name or local directory)
ssl_layers=all       # its hidden states to keep: all, 3, 1-4
ssl_window=utterance # Whisper: utterance (each utterance's own length) | padded (Whisper's 30-s window)
local_data_opts=""   # options passed to local/data.sh

# Protocol options
protocol=""          # loso | losess (utt2session) | random10 (random<K>) | split (utt2split: the corpus's own partition);
                     # "" = the training config's "protocol:" (the one its system was published with), else loso
make_folds_opts=""   # extra speechser-make-folds options, e.g. "--test-split Test2" (protocol split)
folds=""             # e.g. "1 2 3"; empty = all
fold_seed=0          # seed of the random<K> folds

# Training and inference options
ser_config=conf/train.yaml  # training config (model, trainer, data options)
ser_args=""          # extra --key value overrides for speechser-train-ser
ser_tag=""           # experiment tag (default: the config's file name)
cmvn_type=speaker    # none | global | speaker
label_list=data/all/emotions.txt  # the class list (one label a line; its order is the posteriors' order)
label_file=utt2emo   # the data directories' label file (utt2emo)
ser_model=""         # a checkpoint file of each fold's experiment, e.g. valid.ua.ave_5best.pt; "" = its averaged model, else its best
decode_valid=false   # true: stage 6 also decodes each fold's valid set (-> fold<K>/decode_valid, for late fusion)
fusion_config=""     # conf/fuse_*.yaml: stages 6-7 fuse the decodes of the experiments it lists (late fusion)
knn=false            # true: stage 6 adds k-NN interpolated decoding, stage 7 scores it as <ser_tag>-<protocol>-knn
knn_config=conf/knn.yaml  # the k-NN grid (betas, ks, temperatures) and search backend; "" = the tool's defaults
knn_backend=""       # torch | faiss: overrides the backend of ${knn_config}
knn_args=""          # extra --key value overrides of ${knn_config} for speechser-knn-ser, e.g. "--ks [4,8]"
results_md=""          # the results file the scoring stages write sections of; "" = ${expdir}/RESULTS.md, this
                       # run's own (the recipe's RESULTS.md is the published copy: --results_md RESULTS.md)
results_title=""     # the RESULTS.md section title (default: <ser_tag> <protocol>)
final_model=true     # stage 9: train one model on every speaker with the folds' choices and pack it (model.tar)
train_config=""      # former name of --ser_config (still accepted, with a warning)
train_args=""        # former name of --ser_args (still accepted, with a warning)
tag=""               # former name of --ser_tag (still accepted, with a warning)
inference_model=""   # former name of --ser_model (still accepted, with a warning)

help_message="Usage: $0 [--stage N] [--stop_stage M] [--protocol loso|random10|split] [--folds \"1 2\"] [options]"

log "$0 $*"
. ./path.sh
. ./cmd.sh
. utils/parse_options.sh
. utils/stage_lib.sh
[ -n "${results_md}" ] || results_md=${expdir}/RESULTS.md  # a run never rewrites the published results
renamed_option train_config "${train_config}" ser_config
renamed_option train_args "${train_args}" ser_args
renamed_option tag "${tag}" ser_tag
renamed_option inference_model "${inference_model}" ser_model

[ $# -eq 0 ] || { log "Error: unexpected arguments: $*"; exit 2; }
if [ -z "${protocol}" ]; then  # the protocol the training config was published with, else leave-one-speaker-out
    protocol=loso
    if [ -z "${fusion_config}" ] && [ -f "${ser_config}" ]; then
        protocol=$(speechser-config-value "${ser_config}" protocol loso) || exit 1
    fi
fi
case "${feats_type}" in  # features and folds of each front-end apart: data/<protocol>[_<front-end>]
    fbank) featsdir=${dumpdir}/fbank; foldsdir=data/${protocol} ;;
    opensmile_functionals|opensmile_lld)
        featsdir=${dumpdir}/${feats_type}_${opensmile_set}; foldsdir=data/${protocol}_${feats_type}_${opensmile_set} ;;
    ssl_functionals|ssl_frames)
        [ -n "${ssl_model}" ] || { log "Error: --feats_type ${feats_type} needs --ssl_model (a hub name or a local directory)"; exit 2; }
        ssl_name=$(basename "${ssl_model}")
        [ "${ssl_layers}" = all ] || ssl_name+="_states${ssl_layers//,/_}"
        [ "${ssl_window}" = utterance ] || ssl_name+="_${ssl_window}"
        featsdir=${dumpdir}/${feats_type}_${ssl_name}; foldsdir=data/${protocol}_${feats_type}_${ssl_name} ;;
    *) log "Error: --feats_type must be fbank, opensmile_functionals, opensmile_lld, ssl_functionals or ssl_frames, got '${feats_type}'"; exit 2 ;;
esac
if [ -n "${fusion_config}" ]; then
    [ -f "${fusion_config}" ] || { log "Error: --fusion_config ${fusion_config}: no such file"; exit 2; }
    [ "${knn}" != true ] || { log "Error: --knn true decodes one model; it cannot be combined with --fusion_config"; exit 2; }
    [ -n "${ser_tag}" ] || ser_tag=$(default_tag "${fusion_config}")
fi
[ -n "${ser_tag}" ] || ser_tag=$(default_tag "${ser_config}")
exp=${expdir}/${ser_tag}/${protocol}

if [ "${stage}" -le 1 ] && [ "${stop_stage}" -ge 1 ]; then
    log "Stage 1: data preparation -> data/all"
    prepare_data "--no-feats --no-text --labels ${label_file}=${label_list}" all
fi

if [ "${stage}" -le 2 ] && [ "${stop_stage}" -ge 2 ]; then
    log "Stage 2: audio formatting (${fs} Hz, minimum ${min_duration} s) -> ${dumpdir}/raw/all"
    format_audio all
    utils/validate_data_dir.sh --no-feats --no-text "${dumpdir}/raw/all"
fi

if [ "${stage}" -le 3 ] && [ "${stop_stage}" -ge 3 ]; then
    log "Stage 3: ${feats_type} features over ${nj} jobs -> ${featsdir}/all"
    make_features all all
    speechser-compute-cmvn --per-speaker "${featsdir}/all"
    utils/validate_data_dir.sh --no-text "${featsdir}/all"
fi

if [ "${stage}" -le 4 ] && [ "${stop_stage}" -ge 4 ]; then
    log "Stage 4: ${protocol} folds -> ${foldsdir}"
    rm -rf "${foldsdir}"
    folds_opts=()
    split_words folds_opts "${make_folds_opts}"
    speechser-make-folds "${featsdir}/all" "${foldsdir}" --protocol "${protocol}" \
        --label-file "${label_file}" --seed "${fold_seed}" "${folds_opts[@]}"
    if [ "${cmvn_type}" = global ]; then
        for d in "${foldsdir}"/fold*; do speechser-compute-cmvn "${d}/train"; done
    fi
fi

all_folds=$( (ls -d "${foldsdir}"/fold* 2>/dev/null || true) | sed 's/.*fold//' | sort -n | tr '\n' ' ')
[ -n "${folds}" ] || folds=${all_folds}
fold_list=()
split_words fold_list "${folds}"
if [ "${stop_stage}" -ge 5 ] && [ -z "${folds}" ]; then
    log "Error: no folds in ${foldsdir}/ (run stage 4 first, or check --protocol)"; exit 1
fi

if [ "${stage}" -le 5 ] && [ "${stop_stage}" -ge 5 ] && [ -n "${fusion_config}" ]; then
    log "Stage 5: nothing to train for the late fusion ${fusion_config} (its members are trained by their own runs)"
elif [ "${stage}" -le 5 ] && [ "${stop_stage}" -ge 5 ]; then
    log "Stage 5: training folds ${folds}(${train_jobs} at a time, ${threads_per_job} thread(s) each) -> ${exp}"
    mkdir -p "${exp}/logs"
    stage_start=${SECONDS}
    ser_argv=()
    split_words ser_argv "${ser_args}"
    pool_start "${train_jobs}"
    for k in "${fold_list[@]}"; do
        d=${foldsdir}/fold${k}
        [ -d "${d}" ] || { log "Error: ${d} does not exist (run stage 4)"; exit 1; }
        cmvn_args=()
        [ "${cmvn_type}" != global ] || cmvn_args=(--data.cmvn_stats "${d}/train/cmvn.ark")
        pool_run "${exp}/logs/train.fold${k}.log" \
            train_ser "${exp}/logs/train.fold${k}.log" "${exp}/fold${k}" "${ser_config}" \
            "${d}/train" "${d}/valid" "${label_list}" --data.label_file "${label_file}" \
            --data.cmvn_type "${cmvn_type}" "${cmvn_args[@]}" "${ser_argv[@]}"
    done
    pool_wait || { log "Error: fold(s) failed to train; see${pool_failed}"; exit 1; }
    mkdir -p "${exp}/logs" && echo "${cmdline}" > "${exp}/logs/train.command"  # the training command, for the reports
    echo "$((SECONDS - stage_start))" > "${exp}/logs/train.elapsed"
    log "Stage 5 took $((SECONDS - stage_start))s"
fi

if [ "${stage}" -le 6 ] && [ "${stop_stage}" -ge 6 ] && [ -n "${fusion_config}" ]; then
    log "Stage 6: late fusion ${fusion_config} on folds ${folds}-> ${exp}"
    for k in "${fold_list[@]}"; do rm -f "${exp}/fold${k}/decode_test/hyp"; done
    mkdir -p "${exp}/logs"
    speechser-fuse-ser --config "${fusion_config}" --exp-root "${expdir}" --protocol "${protocol}" \
        --out-tag "${ser_tag}" --folds "${fold_list[@]}" > "${exp}/logs/fuse.log" 2>&1 \
        || { log "Error: late fusion failed; see ${exp}/logs/fuse.log"; tail -n 3 "${exp}/logs/fuse.log" >&2; exit 1; }
elif [ "${stage}" -le 6 ] && [ "${stop_stage}" -ge 6 ]; then
    log "Stage 6: inference with ${ser_model:-the averaged (else best) model of each experiment} on folds ${folds}"
    stage_start=${SECONDS}
    [ "${knn}" != true ] || check_knn_config
    # The outputs of a previous run are removed first, so that a failed job cannot leave them in place.
    pool_start "${train_jobs}"
    for k in "${fold_list[@]}"; do
        d=${foldsdir}/fold${k}
        rm -f "${exp}/fold${k}/decode_test/hyp" "${exp}/fold${k}/decode_valid/hyp" "${exp}/fold${k}/knn/test/hyp"
        pool_run "${exp}/logs/infer.fold${k}.log" infer_ser "${exp}/logs/infer.fold${k}.log" "${exp}/fold${k}" \
            "${ser_model}" "${d}/test" "${exp}/fold${k}/decode_test"
        [ "${decode_valid}" != true ] || pool_run "${exp}/logs/infer_valid.fold${k}.log" \
            infer_ser "${exp}/logs/infer_valid.fold${k}.log" "${exp}/fold${k}" "${ser_model}" "${d}/valid" \
            "${exp}/fold${k}/decode_valid"
        [ "${knn}" != true ] || pool_run "${exp}/logs/knn.fold${k}.log" \
            knn_ser "${exp}/logs/knn.fold${k}.log" "${exp}/fold${k}" "${ser_model}" "${d}/train" "${d}/valid" \
            "${exp}/fold${k}/knn" "${d}/test"
    done
    pool_wait || { log "Error: inference job(s) failed; see${pool_failed}"; exit 1; }
    for k in "${fold_list[@]}"; do
        [ -f "${exp}/fold${k}/decode_test/hyp" ] || { log "Error: inference failed for fold ${k}; see ${exp}/logs/infer.fold${k}.log"; exit 1; }
        if [ "${decode_valid}" = true ] && [ ! -f "${exp}/fold${k}/decode_valid/hyp" ]; then
            log "Error: inference on the valid set failed for fold ${k}; see ${exp}/logs/infer_valid.fold${k}.log"; exit 1
        fi
        if [ "${knn}" = true ] && [ ! -f "${exp}/fold${k}/knn/test/hyp" ]; then
            log "Error: k-NN decoding failed for fold ${k}; see ${exp}/logs/knn.fold${k}.log"; exit 1
        fi
    done
    echo "$((SECONDS - stage_start))" > "${exp}/logs/infer.elapsed"
fi

if [ "${stage}" -le 7 ] && [ "${stop_stage}" -ge 7 ]; then
    log "Stage 7: scoring -> ${exp}/scores, ${results_md}"
    decode_dirs=() knn_dirs=()
    for k in "${fold_list[@]}"; do
        decode_dirs+=("${exp}/fold${k}/decode_test")
        knn_dirs+=("${exp}/fold${k}/knn/test")
    done
    nfolds=${#fold_list[@]}
    [ -n "${results_title}" ] || results_title="${ser_tag}: ${protocol}, ${nfolds} fold(s)"
    timing=""
    [ -f "${exp}/logs/train.elapsed" ] && timing="; the last run of stage 5 took $(cat "${exp}/logs/train.elapsed") s (${train_jobs} job(s) x ${threads_per_job} thread(s))"
    [ -f "${exp}/logs/infer.elapsed" ] && timing="${timing}; inference $(cat "${exp}/logs/infer.elapsed") s"
    system_note="model ${ser_model:-averaged (else best) checkpoint}; CMVN ${cmvn_type}"
    [ -z "${fusion_config}" ] || system_note="late fusion ${fusion_config} (weights per fold in ${exp}/fold<K>/fusion.json)"
    train_command=$(cat "${exp}/logs/train.command" 2> /dev/null || true)
    majority=""  # a config with SAILER's majority classes also gets their minority-class mAP
    [ -n "${fusion_config}" ] || majority=$(speechser-config-value "${ser_config}" data.soft_labels.majority "") \
        || exit 1
    speechser-score-ser --label-list "${label_list}" --out-dir "${exp}/scores" \
        --title "${results_title}" --command "${cmdline}" --results-md "${results_md}" \
        --tag "${ser_tag}-${protocol}" --header "$(results_header)" \
        --notes "${system_note}${timing}; confusion plot ${exp}/scores/confusion.png" \
        --utt2spk data/all/utt2spk --majority "${majority}" --train-command "${train_command}" \
        "${decode_dirs[@]}"
    if [ "${knn}" = true ]; then
        speechser-score-ser --label-list "${label_list}" --out-dir "${exp}/scores_knn" \
            --title "${results_title} + k-NN interpolation" --command "${cmdline}" --results-md "${results_md}" \
            --tag "${ser_tag}-${protocol}-knn" --header "$(results_header)" \
            --notes "model ${ser_model:-averaged (else best) checkpoint}; k-NN datastore = each fold's train + valid; beta, k, temperature tuned on its valid set over the grid of ${knn_config:-the default grid}${knn_args:+ with ${knn_args}} (fold<K>/knn/knn_params.json)" \
            --majority "${majority}" --train-command "${train_command}" "${knn_dirs[@]}"
    fi
fi

if [ "${stage}" -le 8 ] && [ "${stop_stage}" -ge 8 ]; then
    log "Stage 8: packing each fold's model${fusion_config:+ (the late fusion: every member and the weights of the fold)} -> ${exp}/packed/fold<K>.tar"
    [ "${knn}" != true ] || log "Stage 8: with --knn true also fold<K>_knn.tar: the datastore and its tuned beta/k/T"
    mkdir -p "${exp}/packed" "${exp}/logs"
    pack_opts=(--corpus "$(recipe_name)" --min-duration "${min_duration}")
    [ -z "${ser_model}" ] || pack_opts+=(--checkpoint "${ser_model}")
    [ ! -f "${exp}/scores/report.md" ] || pack_opts+=(--results "${exp}/scores/report.md")
    for k in "${fold_list[@]}"; do
        rc=0
        speechser-pack --exp-dir "${exp}/fold${k}" --out "${exp}/packed/fold${k}.tar" "${pack_opts[@]}" \
            > "${exp}/logs/pack.fold${k}.log" 2>&1 || rc=$?
        if [ "${rc}" -eq 3 ]; then  # a model packing does not support yet: said, not a failure of the run
            log "Stage 8: not packed: $(tail -n 1 "${exp}/logs/pack.fold${k}.log")"; break
        fi
        [ "${rc}" -eq 0 ] || { log "Error: packing fold ${k} failed; see ${exp}/logs/pack.fold${k}.log"
                             tail -n 2 "${exp}/logs/pack.fold${k}.log" >&2; exit 1; }
        if [ "${knn}" = true ]; then
            speechser-pack --exp-dir "${exp}/fold${k}" --out "${exp}/packed/fold${k}_knn.tar" "${pack_opts[@]}" \
                --knn-dir "${exp}/fold${k}/knn" > "${exp}/logs/pack_knn.fold${k}.log" 2>&1 \
                || { log "Error: packing fold ${k} with k-NN failed; see ${exp}/logs/pack_knn.fold${k}.log"; exit 1; }
        fi
    done
fi

if [ "${stage}" -le 9 ] && [ "${stop_stage}" -ge 9 ]; then
    final=${expdir}/${ser_tag}/final
    final_logs=${expdir}/${ser_tag}/logs  # beside the experiment: a new run moves the old one's files away
    if [ -n "${fusion_config}" ]; then
        log "Stage 9: no final model for a late fusion (train each member's with its own run); the folds' archives are in ${exp}/packed"
    elif [ "${final_model}" != true ]; then
        log "Stage 9: skipped (--final_model ${final_model})"
    else
        log "Stage 9: final model on every speaker with the settings the ${protocol} folds chose -> ${final}, ${expdir}/${ser_tag}/packed/model.tar"
        fold_exps=()
        for k in "${fold_list[@]}"; do fold_exps+=("${exp}/fold${k}"); done
        mkdir -p "${final_logs}" "${expdir}/${ser_tag}/packed"
        speechser-final-settings --out "${final_logs}/final_settings.json" "${fold_exps[@]}" \
            > "${final_logs}/final_settings.args" || exit 1
        mapfile -t final_argv < "${final_logs}/final_settings.args"
        ser_argv=()
        split_words ser_argv "${ser_args}"
        cmvn_args=()
        [ "${cmvn_type}" != global ] || cmvn_args=(--data.cmvn_stats "${featsdir}/all/cmvn.ark")
        # every utterance trains; the trainer's validation set is the same data, and decides nothing: the
        # number of epochs (or C and the states) was chosen by the folds. A new run each time (an earlier one
        # is moved into final/backup.<time>/): the folds' choice may have changed
        train_ser "${final_logs}/final_train.log" "${final}" "${ser_config}" "${featsdir}/all" "${featsdir}/all" \
            "${label_list}" --data.label_file "${label_file}" --data.cmvn_type "${cmvn_type}" "${cmvn_args[@]}" \
            "${ser_argv[@]}" "${final_argv[@]}" --trainer.resume false \
            || { log "Error: the final model failed to train; see ${final_logs}/final_train.log"; exit 1; }
        cp "${final_logs}/final_settings.json" "${final}/final_settings.json"  # the choice, with the model
        echo "${cmdline}" > "${final_logs}/final_train.command"
        pack_opts=(--corpus "$(recipe_name)" --min-duration "${min_duration}")
        [ ! -f "${exp}/scores/report.md" ] || pack_opts+=(--results "${exp}/scores/report.md")
        rc=0
        speechser-pack --exp-dir "${final}" --out "${expdir}/${ser_tag}/packed/model.tar" "${pack_opts[@]}" \
            > "${final_logs}/final_pack.log" 2>&1 || rc=$?
        if [ "${rc}" -eq 3 ]; then
            log "Stage 9: not packed: $(tail -n 1 "${final_logs}/final_pack.log")"
        elif [ "${rc}" -ne 0 ]; then
            log "Error: packing the final model failed; see ${final_logs}/final_pack.log"; tail -n 2 "${final_logs}/final_pack.log" >&2; exit 1
        else
            log "Stage 9: ${expdir}/${ser_tag}/packed/model.tar: trained on every speaker, $(sed -n 's/^ "summary": "\(.*\)",$/\1/p' "${final}/final_settings.json"); its accuracy is estimated by the ${protocol} folds (${exp}/scores)"
        fi
    fi
fi

log "Successfully finished. [elapsed=${SECONDS}s]"
