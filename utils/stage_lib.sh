# The steps the recipe stage scripts share (egs/TEMPLATE/{asr1/asr.sh, ser1/ser.sh, asr_ser1/asr_ser.sh}),
# one bash function per step. Source it after utils/parse_options.sh:  . utils/stage_lib.sh
# Each stage script keeps its own numbered, guarded stages and calls these; nothing here runs on sourcing.
#
# The functions read the stage scripts' common options as globals: nj (feature jobs), threads_per_job (CPU
# threads of each training, decoding and k-NN job; default 2), ngpu and num_nodes (of each training; default 1), dumpdir, fs, min_duration,
# num_mel_bins, beam_size, local_data_opts, knn_config, knn_backend, knn_args, results_md, cmdline,
# and cmd.sh's feats_cmd, train_cmd, infer_cmd. Everything step-specific is an argument.
# Layout: data/<set> -> ${dumpdir}/raw/<set> -> ${dumpdir}/fbank/<set>; experiments under exp/<tag>.
# shellcheck disable=SC2154  # those globals are set by the stage script that sources this file

# split_words <array name> "<string>": the words of the string (split at spaces, tabs and newlines; never
# globbed, so "--ks [4,8]" stays as it is) into the named array. Option strings such as --local_data_opts or
# --train_args, lists such as --test_sets, and cmd.sh's job runners ("utils/slurm.pl --mem 8G") are lists of
# words by design; everything else is passed quoted, whole, so that a path may hold spaces.
split_words() {
    local -n _split_words_out=$1
    read -r -d '' -a _split_words_out <<< "$2" || true
}

# recipe_name: "<corpus>/<task>" of the recipe directory (the RESULTS.md header names it)
recipe_name() { echo "$(basename "$(dirname "${PWD}")")/$(basename "${PWD}")"; }
results_header() { echo "# RESULTS: $(recipe_name)"; }

# model_path <exp> <name>: the weights file of <exp> later stages use: <exp>/<name>, or for an empty <name> the
# model its training wrote (averaged, else best; speechser-model-path). A missing model is an error on the
# terminal naming it and the models <exp> has. Use as: model=$(model_path "${exp}" "${name}") || exit 1
model_path() {
    speechser-model-path --exp-dir "$1" --name "$2" || { log "Error: no model to use in $1 (see above)" >&2; return 1; }
}

# renamed_option <former name> <its value> <name>: an option given under its former name (--threads, --tag,
# ...) is taken as the new one, with a warning; the stage scripts declare both and call this after
# parse_options.sh, e.g. renamed_option tag "${tag}" asr_tag
renamed_option() {
    [ -n "$2" ] || return 0
    log "Warning: --$1 is now --$3; taking --$3 '$2'"
    printf -v "$3" '%s' "$2"
}

# A pool of background jobs, at most <max> running at a time, each with its log, every exit status counted
# (a bare "wait" would return 0 and let an old output pass for a new one):
#   pool_start <max>; pool_run <log> <command> [args...]; ...; pool_wait || { log "Error: ...${pool_failed}"; exit 1; }
# pool_wait returns 1 when a job failed and leaves the failed jobs' logs in ${pool_failed} (" <log>" each).
pool_start() { pool_max=$1; pool_pids=(); pool_logs=(); pool_failed=""; }
pool_run() {
    local log=$1
    shift
    "$@" &
    pool_pids+=($!)
    pool_logs+=("${log}")
    while [ "$(jobs -rp | wc -l)" -ge "${pool_max}" ]; do wait -n || true; done
}
pool_wait() {
    local i
    pool_failed=""
    for i in "${!pool_pids[@]}"; do wait "${pool_pids[${i}]}" || pool_failed+=" ${pool_logs[${i}]}"; done
    [ -z "${pool_failed}" ]
}

# default_tag <config> [<suffix>]: an experiment tag from a config's file name (conf/train.yaml char -> train_char)
default_tag() { echo "$(basename "$1" .yaml)${2:+_$2}"; }

# prepare_data "<validate_data_dir.sh options>" <set>...: local/data.sh ${local_data_opts}, then each data/<set> validated
prepare_data() {
    local validate_opts=() data_opts=() s
    split_words validate_opts "$1"
    shift
    split_words data_opts "${local_data_opts}"
    local/data.sh "${data_opts[@]}"
    for s in "$@"; do utils/validate_data_dir.sh "${validate_opts[@]}" "data/${s}"; done
}

# format_audio <set>...: data/<set> -> ${dumpdir}/raw/<set>, resampled to ${fs} Hz; empty utterances and
# those shorter than ${min_duration} s are dropped (logged and counted)
format_audio() {
    local s
    for s in "$@"; do
        speechser-format-audio "data/${s}" "${dumpdir}/raw/${s}" --audio-dir "${dumpdir}/raw/${s}/wav" \
            --rate "${fs}" --min-duration "${min_duration}"
    done
}

# make_features <cmvn_set> <set>...: ${num_mel_bins}-bin fbank (or ${feats_type} openSMILE ${opensmile_set}
# features, or ${feats_type} ssl_* hidden states ${ssl_layers} of ${ssl_model}) of ${dumpdir}/raw/<set> over
# ${nj} jobs -> ${featsdir:-${dumpdir}/fbank}/<set>; global CMVN statistics of <cmvn_set> -> <that dir>/<cmvn_set>/cmvn.ark
make_features() {
    local cmvn_set=$1 s dir=${featsdir:-${dumpdir}/fbank}; shift
    for s in "$@"; do
        utils/make_fbank.sh --nj "${nj}" --cmd "${feats_cmd}" --num_mel_bins "${num_mel_bins}" \
            --feats_type "${feats_type:-fbank}" --opensmile_set "${opensmile_set:-eGeMAPSv02}" \
            --ssl_model "${ssl_model:-}" --ssl_layers "${ssl_layers:-all}" --ssl_window "${ssl_window:-utterance}" \
            "${dumpdir}/raw/${s}" "${dir}/${s}"
    done
    speechser-compute-cmvn "${dir}/${cmvn_set}"
}

# token_name <token_type> <nbpe>: what names a token set in data/token_list/ and in default experiment tags:
# char, or the sentencepiece type with its vocabulary size (bpe128), so that another --nbpe never overwrites
# the model an earlier experiment was trained with
token_name() {
    if [ "$1" = char ]; then echo char; else echo "$1$2"; fi
}

# make_tokens <set> <token_type> <nbpe>: the token list (char) or sentencepiece model (bpe, unigram)
# of ${dumpdir}/raw/<set>/text -> data/token_list/<token_name>
make_tokens() {
    speechser-make-tokens "${dumpdir}/raw/$1/text" "data/token_list/$(token_name "$2" "$3")" --token-type "$2" \
        --vocab-size "$3"
}

# token_args <token_type> <nbpe>: the speechser-train-asr options naming the tokens make_tokens wrote, one a
# line (mapfile -t tok < <(token_args "${token_type}" "${nbpe}"))
token_args() {
    if [ "$1" = char ]; then
        printf '%s\n' --data.token_type char --data.token_list data/token_list/char/tokens.txt
    else
        printf '%s\n' --data.token_type sentencepiece --data.bpe_model "data/token_list/$(token_name "$1" "$2")/bpe.model"
    fi
}

# train_launch <log> <command> [args...]: a training (${threads_per_job} CPU threads) through ${train_cmd} and speechser-launch on
# ${ngpu} processes (GPUs) per node and ${num_nodes} nodes: --ngpu 0 trains on CPUs (--trainer.device cpu),
# 1 in one process (a GPU when there is one), N > 1 under torchrun; --num_nodes M > 1 needs train_cmd=utils/slurm.pl
# (one torchrun per node through srun). The trainer keeps the config's global batch whatever the process count.
train_launch() {
    local log=$1 device=() runner=()
    shift
    [ "${ngpu:-1}" != 0 ] || device=(--trainer.device cpu)
    split_words runner "${train_cmd}"
    "${runner[@]}" --num-threads "${threads_per_job:-2}" --gpu "${ngpu:-1}" --num-nodes "${num_nodes:-1}" "${log}" \
        speechser-launch --ngpu "${ngpu:-1}" --num-nodes "${num_nodes:-1}" -- "$@" "${device[@]}"
}

# train_asr <exp> <config> <train_set> <valid_set> [speechser-train-asr options...]: ASR (or BEST-RQ)
# training on ${dumpdir}/fbank with the training set's global CMVN -> <exp>, log <exp>/logs/train.log,
# wall time in seconds <exp>/logs/train.elapsed
train_asr() {
    local exp=$1 config=$2 train=${dumpdir}/fbank/$3 valid=${dumpdir}/fbank/$4 start=${SECONDS}
    shift 4
    mkdir -p "${exp}/logs"
    train_launch "${exp}/logs/train.log" \
        speechser-train-asr --config "${config}" --exp-dir "${exp}" \
        --data.train_dir "${train}" --data.valid_dir "${valid}" \
        --data.cmvn_type global --data.cmvn_stats "${train}/cmvn.ark" "$@"
    echo "$((SECONDS - start))" > "${exp}/logs/train.elapsed"
}

# decode_asr <exp> <checkpoint> "<decoders>" <set>...: every decoder on ${dumpdir}/fbank/<set>
# -> <exp>/decode_<decoder>_<set> (log <exp>/logs/decode_<decoder>_<set>.log), beam ${beam_size}
decode_asr() {
    local exp=$1 ckpt=$2 dec_list=() runner=() dec s
    split_words dec_list "$3"
    shift 3
    split_words runner "${infer_cmd}"
    mkdir -p "${exp}/logs"
    for dec in "${dec_list[@]}"; do
        for s in "$@"; do
            "${runner[@]}" --num-threads "${threads_per_job:-2}" "${exp}/logs/decode_${dec}_${s}.log" \
                speechser-decode-asr --exp-dir "${exp}" --checkpoint "${ckpt}" \
                --data-dir "${dumpdir}/fbank/${s}" --out-dir "${exp}/decode_${dec}_${s}" \
                --decoder "${dec}" --beam "${beam_size}"
        done
    done
}

# use_model_decoders <exp>: keep ${decoders} when given, else set it to every decoder <exp>'s model can run
# (its branches: ctc_greedy ctc_beam with a CTC head, rnnt_greedy rnnt_beam with a transducer)
use_model_decoders() {
    [ -z "${decoders}" ] || return 0
    decoders=$(speechser-decode-asr --exp-dir "$1" --list-decoders) || { log "Error: cannot read the model of $1"; exit 1; }
}

# decode_dirs <exp> "<decoders>" <set>...: the directories decode_asr writes, one a line
# (mapfile -t dirs < <(decode_dirs ...))
decode_dirs() {
    local exp=$1 dec_list=() dec s
    split_words dec_list "$2"
    shift 2
    for dec in "${dec_list[@]}"; do for s in "$@"; do echo "${exp}/decode_${dec}_${s}"; done; done
}

# score_asr <tag> <title> <notes> <decode_dir>...: WER/CER tables -> section <tag> of ${results_md}, with the
# training command ${train_command} (when set) and the training time of the decoded experiments
score_asr() {
    local tag=$1 title=$2 notes=$3
    shift 3
    speechser-score-asr --results-md "${results_md}" --tag "${tag}" --title "${title}" --command "${cmdline}" \
        --train-command "${train_command:-}" \
        --notes "${notes}" --header "$(results_header)" "$@"
}

# filter_loop <asr_exp> <checkpoint> <config> <train_set> <valid_set> "<test_sets>" [speechser-filter-loop options...]:
# the data filter loop from <asr_exp>/<checkpoint> -> <asr_exp>/filter (round<r>/, rounds.tsv, final_asr);
# its wall time and command line are kept in <asr_exp>/filter/logs for report_filter_rounds
filter_loop() {
    local exp=$1 ckpt=$2 config=$3 train=$4 valid=$5 test_list=() start=${SECONDS} s
    split_words test_list "$6"
    shift 6
    local out=${exp}/filter test_args=() runner=()
    for s in "${test_list[@]}"; do test_args+=(--test-dir "${dumpdir}/fbank/${s}"); done
    split_words runner "${train_cmd}"
    mkdir -p "${out}/logs"
    "${runner[@]}" --num-threads "${threads_per_job:-2}" "${out}/logs/filter_loop.log" \
        speechser-filter-loop --config "${config}" --asr-exp "${exp}" --checkpoint "${ckpt}" \
        --train-dir "${dumpdir}/fbank/${train}" --valid-dir "${dumpdir}/fbank/${valid}" "${test_args[@]}" \
        --out-dir "${out}" "$@"
    echo "$((SECONDS - start))" > "${out}/logs/filter_loop.elapsed"
    echo "${cmdline}" > "${out}/logs/filter_loop.command"
}

# final_asr <asr_exp> <checkpoint name, "" = its averaged model> [<filter_config>]: "<experiment> <checkpoint>" of
# the ASR model later stages use: the filter loop's last retrained round (with a filter config and a finished
# loop), else the input
final_asr() {
    local model
    if [ -n "${3:-}" ] && [ -f "$1/filter/final_asr" ]; then
        cat "$1/filter/final_asr"
    else
        model=$(model_path "$1" "$2") || return 1
        echo "$1 ${model}"
    fi
}

# final_asr_model <asr_exp> <checkpoint name> <filter_config>: final_asr's experiment and checkpoint into the
# globals final_exp and final_ckpt; a missing model ends the stage script (the error names it)
final_asr_model() {
    local line
    line=$(final_asr "$1" "$2" "$3") || exit 1
    # shellcheck disable=SC2034  # the globals the stage scripts read
    read -r final_exp final_ckpt <<< "${line}"
}

# report_filter_rounds <asr_exp> <filter_config>: <asr_exp>/filter/rounds.tsv -> section filter-rounds of ${results_md}
report_filter_rounds() {
    local out=$1/filter
    speechser-report-filter-rounds "${out}/rounds.tsv" --results-md "${results_md}" --header "$(results_header)" \
        --title "data filter loop ($2)" --command "$(cat "${out}/logs/filter_loop.command" 2>/dev/null || echo "${cmdline}")" \
        --wall-time "$(cat "${out}/logs/filter_loop.elapsed" 2>/dev/null || echo "")"
}

# train_ser <log> <exp> <config> <train_dir> <valid_dir> <label_list> [speechser-train-ser options...]
train_ser() {
    local log=$1 exp=$2 config=$3 train=$4 valid=$5 labels=$6
    shift 6
    mkdir -p "$(dirname "${log}")"
    train_launch "${log}" \
        speechser-train-ser --config "${config}" --exp-dir "${exp}" \
        --data.train_dir "${train}" --data.valid_dir "${valid}" --data.label_list "${labels}" "$@"
}


# infer_ser <log> <exp> <checkpoint name in exp, "" = its averaged/best model> <data_dir> <out_dir>:
# posteriors, hyp, ref, scores.json -> <out_dir>
infer_ser() {
    local ckpt_args=() runner=()  # no --checkpoint: the experiment's averaged model, else its best
    [ -z "$3" ] || ckpt_args=(--checkpoint "$2/$3")
    split_words runner "${infer_cmd}"
    mkdir -p "$(dirname "$1")"
    "${runner[@]}" --num-threads "${threads_per_job:-2}" "$1" \
        speechser-infer-ser --exp-dir "$2" "${ckpt_args[@]}" --data-dir "$4" --out-dir "$5"
}

# check_knn_config: an error (exit 1) when ${knn_config} is given and is not a file; an empty one
# leaves speechser-knn-ser's built-in grid
check_knn_config() {
    [ -z "${knn_config}" ] || [ -f "${knn_config}" ] || { log "Error: --knn_config ${knn_config}: no such file"; exit 1; }
}

# knn_ser <log> <exp> <checkpoint name in exp, "" = its averaged/best model> <train_dir> <valid_dir> <out_dir> <test_dir>...: k-NN interpolated
# SER decoding (datastore train + valid; beta, k, temperature tuned on valid) -> <out_dir>/<test>/.
# The grid is ${knn_config} (YAML: betas, ks, temperatures, backend); --knn_backend, when given, overrides
# its backend, and ${knn_args} (e.g. "--ks [4,8] --betas [0.0,0.5]": split at spaces, so none inside a
# value) any key, last.
knn_ser() {
    local log=$1 exp=$2 ckpt=$3 train=$4 valid=$5 out=$6 t
    shift 6
    local opts=() tests=() overrides=() runner=()
    [ -z "${ckpt}" ] || opts+=(--checkpoint "${exp}/${ckpt}")
    check_knn_config
    [ -z "${knn_config}" ] || opts+=(--config "${knn_config}")
    [ -z "${knn_backend}" ] || opts+=(--backend "${knn_backend}")
    for t in "$@"; do tests+=(--test-dir "${t}"); done
    split_words overrides "${knn_args}"
    split_words runner "${infer_cmd}"
    mkdir -p "$(dirname "${log}")"
    "${runner[@]}" --num-threads "${threads_per_job:-2}" "${log}" \
        speechser-knn-ser --exp-dir "${exp}" --train-dir "${train}" --valid-dir "${valid}" \
        "${tests[@]}" --out-dir "${out}" "${opts[@]}" "${overrides[@]}"
}
