#!/usr/bin/env bash
# VLSP 2025 ASR-SER: the multi-stage system (BEST-RQ -> Conformer CTC + RNN-T -> data filter loop ->
# SER fused with the ASR encoder, CE + SupCon -> k-NN interpolation -> challenge scores).
#   ./run.sh                                 all 12 stages with the paper-sized configs (GPU)
#   ./run.sh --ser_config conf/train_ser_tdnn.yaml    SER without an SSL model
#   ./run.sh --stage 8 --stop_stage 11       SER, k-NN, decoding and scoring only
#   ./run.sh --noise_scp noise.scp --rir_scp rir.scp  on-the-fly noise / reverberation lists (or db.sh)
# The release layout local/data.sh expects is documented in local/prepare_vlsp2025.py.
set -euo pipefail
[ -f ./db.sh ] || { echo "$0: run it from its recipe directory: cd $(dirname "$0") && ./$(basename "$0")" >&2; exit 1; }
. ./db.sh
# The paper's front-end (sec. 3.1): utterances shorter than 0.5 s dropped, 128-bin fbank (25 ms / 10 ms).
# Later options (the command line's) win.
./asr_ser.sh --min_duration 0.5 --num_mel_bins 128 --noise_scp "${NOISE_SCP}" --rir_scp "${RIR_SCP}" "$@"
