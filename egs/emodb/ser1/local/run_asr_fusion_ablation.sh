#!/usr/bin/env bash
# Emo-DB leave-one-speaker-out ablation of the multi-stage system's SER parts, same folds for every row:
#   1. the foundation model                 conf/train_tdnn.yaml                    (./run.sh)
#   2. + fusion with the AN4 ASR encoder    conf/train_tdnn_asr_fusion.yaml
#   3. + the hybrid CE + SupCon loss        conf/train_tdnn_asr_fusion_supcon.yaml  (SupCon L_out)
#   4. + k-NN interpolation                 row 3's models decoded with --knn true
# and a variant of row 2 (--variants true, the default):
#   2b. fusion with modality dropout 0.5   conf/train_tdnn_asr_fusion_mdrop.yaml
# The ASR encoder is the AN4 model of ../../an4/asr1 (English, so no Emo-DB test speaker was ever
# heard by it); run that recipe first. Extra options (e.g. --train_jobs 2) pass to run.sh.
set -euo pipefail
. ./path.sh
variants=true
results_md=exp/RESULTS.md  # this run's own; --results_md RESULTS.md (first) updates the published copy
if [ "${1:-}" = "--results_md" ]; then results_md=$2; shift 2; fi
if [ "${1:-}" = "--variants" ]; then variants=$2; shift 2; fi
asr_model=../../an4/asr1/exp/train_char/valid.acc.ave_5best.pt
if [ ! -f "${asr_model}" ]; then
    echo "$0: ${asr_model} not found: run egs/an4/asr1 first" >&2
    exit 1
fi
[ -d data/loso ] || ./run.sh --feats_type fbank --stop_stage 4 "$@"
# row <config> [run.sh options]: trains and scores the row unless its LOSO scores exist
row() {
    local conf=$1 scores; shift
    scores=exp/$(basename "${conf}" .yaml)/loso/scores/scores.tsv
    case " $* " in *" --knn true "*) scores=exp/$(basename "${conf}" .yaml)/loso/scores_knn/scores.tsv ;; esac
    if [ -f "${scores}" ]; then echo "$0: ${scores} exists, skipping ${conf}"; return 0; fi
    ./run.sh --feats_type fbank --stage 5 --ser_config "${conf}" --results_md "${results_md}" "$@"
}
row conf/train_tdnn.yaml "$@"
row conf/train_tdnn_asr_fusion.yaml "$@"
row conf/train_tdnn_asr_fusion_supcon.yaml --knn true "$@"
if [ "${variants}" = true ]; then
    row conf/train_tdnn_asr_fusion_mdrop.yaml "$@"
fi
# the ablation table, at its place in ${results_md} (section asr-ser-ablation)
rows=("1. foundation (train_tdnn)=exp/train_tdnn/loso/scores/scores.tsv"
      "2. + fusion with the AN4 ASR encoder=exp/train_tdnn_asr_fusion/loso/scores/scores.tsv"
      "3. + hybrid loss 0.5 CE + 0.5 SupCon=exp/train_tdnn_asr_fusion_supcon/loso/scores/scores.tsv"
      "4. + k-NN interpolation=exp/train_tdnn_asr_fusion_supcon/loso/scores_knn/scores.tsv")
[ "${variants}" = true ] && rows+=("2b. row 2 + modality dropout 0.5=exp/train_tdnn_asr_fusion_mdrop/loso/scores/scores.tsv")
speechser-compare-ser --results-md "${results_md}" --tag asr-ser-ablation --header "# RESULTS: emodb/ser1" \
    --title "Ablation of the multi-stage system's SER parts (leave-one-speaker-out)" \
    --command "local/run_asr_fusion_ablation.sh${*:+ $*}" \
    --notes "ASR encoder: egs/an4/asr1 exp/train_char/valid.acc.ave_5best.pt (English AN4; no Emo-DB speaker in its training data), frozen. Date $(date +%F), $(nproc) CPU core(s), no GPU." \
    "${rows[@]}"
