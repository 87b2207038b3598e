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
results_md=RESULTS.md
tag_prefix=short

log "$0 $*"
. ./path.sh
. ./cmd.sh
. utils/parse_options.sh

fb=dump/fbank
clean=${fb}/train_nodev_sp
name=train_nodev_corrupt$(python3 -c "print(round(100 * ${fraction}))")
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
        ./run.sh --stage 6 --stop_stage 7 --nj "${nj}" --train_set "${train_set}" --asr_config "${train_config}" \
            --tag "${tag}" --decoders ctc_greedy --inference_model "${inference_model}"
    fi
done

corrupt_exp=exp/${tag_prefix}_corrupt
for variant in paper upper; do
    out=${corrupt_exp}/filter_${variant}
    bounds=""
    [ "${variant}" = upper ] && bounds="--bounds.wer_min -1 --bounds.conf_max 2"
    if [ ! -f "${out}/final_asr" ]; then
        log "filter round (${variant} bounds) -> ${out}"
        mkdir -p "${out}/logs"
        ${train_cmd} --num-threads "${nj}" "${out}/logs/filter_loop.log" \
            speechser-filter-loop --config "${filter_config}" --asr-exp "${corrupt_exp}" \
            --checkpoint "${corrupt_exp}/${inference_model}" --train-dir "${bad}" --valid-dir "${fb}/train_dev" \
            --test-dir "${fb}/test" --out-dir "${out}" ${bounds}
    fi
    speechser-corrupt-transcripts --score "${out}/round1/data.utt_stats.tsv" "${bad}/corrupted" > "${out}/detection.json"
done

python3 - "${results_md}" "${cmdline}" "${SECONDS}" "${fraction}" "${seed}" "${train_config}" "${tag_prefix}" \
    "${bad}" <<'PY'
import json, sys
from pathlib import Path
from speechser.filter.corrupt import read_corrupted_list
from speechser.metrics.report import environment_line, replace_section

md, cmd, secs, fraction, seed, train_config, prefix, bad = sys.argv[1:]
def wers(exp):
    return [100 * json.loads((Path(exp) / f"decode_ctc_greedy_{s}" / "scores.json").read_text())["wer"]
            for s in ("train_dev", "test")]
n_train = sum(1 for _ in open(Path(bad) / "text"))
kinds = read_corrupted_list(Path(bad) / "corrupted")
count = {k: sum(v == k for v in kinds.values()) for k in ("substituted", "truncated", "swapped")}
rows, filtered = [], {}
for cond, label in (("clean", "clean transcripts"), ("corrupt", f"{float(fraction):.0%} corrupted")):
    dev, test = wers(f"exp/{prefix}_{cond}")
    rows.append((label, str(n_train), "", "", "", dev, test))
for v, label in (("paper", "paper's bounds"), ("upper", "upper bounds only")):
    out = Path(f"exp/{prefix}_corrupt/filter_{v}")
    det = json.loads((out / "detection.json").read_text())
    rep = json.loads((out / "round1" / "data.report.json").read_text())
    exp = out / "round1" / "asr"
    dev, test = wers(exp)
    filtered[v] = dev
    rows.append((f"filtered, {label}", str(rep["kept"]), f"{rep['too_easy']} / {rep['too_corrupt']}",
                 f"{100 * det['precision']:.1f}", f"{100 * det['recall']:.1f}", dev, test))
best = min(filtered, key=filtered.get)
lines = [f"## corrupted-transcript filter experiment", "",
         f"- environment: {environment_line()}", f"- command: `{cmd}`; wall time {secs} s",
         f"- {len(kinds)} of the {n_train // 3} training recordings ({float(fraction):.0%}, seed {seed}) corrupted, "
         f"with all 3 speed-perturbed copies of each: {count['substituted']} substituted, {count['truncated']} "
         f"truncated, {count['swapped']} swapped (`speechser-corrupt-transcripts`); dev and test untouched",
         f"- every model: `{train_config}`, decoded with CTC greedy, model {Path('valid.acc.ave_5best.pt')}",
         "- one filter round, decoding the corrupted training set with the corrupted model; the kept set is "
         "trained from scratch with the same schedule",
         "- precision / recall: of the utterances the filter removed as too corrupt (WER >= wer_max or "
         "confidence <= conf_min), how many were corrupted / of the corrupted, how many it removed",
         f"- selected on dev WER: **{'paper' if best == 'paper' else 'upper'} bounds** (marked *)", "",
         "| training transcripts | training utts | removed easy / corrupt | precision % | recall % | dev WER % | "
         "test WER % |", "| --- | --- | --- | --- | --- | --- | --- |"]
for i, (label, n, rem, p, r, dev, test) in enumerate(rows):
    star = " *" if (i == 2 and best == "paper") or (i == 3 and best == "upper") else ""
    lines.append(f"| {label}{star} | {n} | {rem or '-'} | {p or '-'} | {r or '-'} | {dev:.2f} | {test:.2f} |")
replace_section(md, "corrupted-filter", "\n".join(lines) + "\n", "# RESULTS: an4/asr1")
print("\n".join(lines))
PY
log "Successfully finished. [elapsed=${SECONDS}s]"
