#!/usr/bin/env bash
# Does the data filter find bad transcripts? Corrupt a seeded ${fraction} of AN4's training
# transcripts (substituted, truncated, swapped: speechser-corrupt-transcripts), train on the
# corrupted set, run one filter round on it, and compare, all with one schedule (${train_config}):
#
#   clean      trained on the true transcripts
#   corrupt    trained on the corrupted ones
#   filtered   trained from scratch on what the filter kept of the corrupted set, for each of
#              two bound settings (the paper's; only its upper bounds); the one with the lower
#              dev WER is the selected row (the dev set is never corrupted and test is not looked at)
#
# and the filter's precision and recall in finding the corrupted utterances. The table goes
# into ${results_md} (section "corrupted-filter"). Needs stages 1-5 of run.sh. Each finished
# step is skipped on a rerun, so the script resumes after an interruption.
set -euo pipefail

. utils/log.sh
SECONDS=0
cmdline="$0 $*"

fraction=0.15
seed=0
nj=2
train_config=conf/train_short.yaml
filter_config=conf/filter_corrupt.yaml
inference_model=valid.acc.ave_5best.pt
results_md=exp/RESULTS.md  # this run's own; --results_md RESULTS.md updates the published copy
tag_prefix=short

log "$0 $*"
. ./path.sh
. ./cmd.sh
. utils/parse_options.sh

fb=dump/fbank
clean=${fb}/train_nodev_sp
name=train_nodev_corrupt$(awk -v f="${fraction}" 'BEGIN { printf "%d", 100 * f + 0.5 }')
bad=${fb}/${name}_sp
[ -f "${clean}/feats.scp" ] || { log "Error: ${clean}/feats.scp not found: run ./run.sh --stop_stage 5 first"; exit 1; }

if [ ! -f "${bad}/corrupted" ]; then
    log "corrupting ${fraction} of ${clean} (seed ${seed}) -> ${bad}"
    rm -rf "${bad}"
    speechser-corrupt-transcripts "${clean}" "${bad}" --fraction "${fraction}" --seed "${seed}"
    cp "${clean}/cmvn.ark" "${bad}/cmvn.ark"  # the same audio: the same normalization
fi

for cond in clean corrupt; do
    train_set=train_nodev
    [ "${cond}" = corrupt ] && train_set=${name}
    tag=${tag_prefix}_${cond}
    if [ ! -f "exp/${tag}/decode_ctc_greedy_test/scores.json" ]; then
        log "training ${tag} on ${fb}/${train_set}_sp"
        ./run.sh --stage 6 --stop_stage 8 --nj "${nj}" --train_set "${train_set}" --asr_config "${train_config}" \
            --asr_tag "${tag}" --decoders ctc_greedy --asr_model "${inference_model}"
    fi
done

corrupt_exp=exp/${tag_prefix}_corrupt
# cmd.sh's train_cmd is the job runner with its options, one string ("utils/slurm.pl --mem 8G"): its words
read -r -d '' -a runner <<< "${train_cmd}" || true
for variant in paper upper; do
    out=${corrupt_exp}/filter_${variant}
    bounds=()
    [ "${variant}" != upper ] || bounds=(--bounds.wer_min -1 --bounds.conf_max 2)
    if [ ! -f "${out}/final_asr" ]; then
        log "filter round (${variant} bounds) -> ${out}"
        mkdir -p "${out}/logs"
        "${runner[@]}" --num-threads "${nj}" "${out}/logs/filter_loop.log" \
            speechser-filter-loop --config "${filter_config}" --asr-exp "${corrupt_exp}" \
            --checkpoint "${corrupt_exp}/${inference_model}" --train-dir "${bad}" --valid-dir "${fb}/train_dev" \
            --test-dir "${fb}/test" --out-dir "${out}" "${bounds[@]}"
    fi
    speechser-corrupt-transcripts --score "${out}/round1/data.utt_stats.tsv" "${bad}/corrupted" > "${out}/detection.json"
done

python3 local/corrupted_filter_table.py "${results_md}" "${cmdline}" "${SECONDS}" "${fraction}" "${seed}" \
    "${train_config}" "${tag_prefix}" "${bad}"
log "Successfully finished. [elapsed=${SECONDS}s]"
