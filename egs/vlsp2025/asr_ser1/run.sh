#!/usr/bin/env bash
# VLSP 2025 ASR-SER: the multi-stage system (BEST-RQ -> Conformer CTC + RNN-T -> data filter loop ->
# SER fused with the ASR encoder, CE + SupCon -> k-NN interpolation -> challenge scores).
#   ./run.sh                                 all 11 stages with the paper-sized configs (GPU)
#   ./run.sh --ser_config conf/train_ser_tdnn.yaml    SER without an SSL model
#   ./run.sh --stage 8 --stop_stage 11       SER, k-NN, decoding and scoring only
# The release layout local/data.sh expects is documented in local/prepare_vlsp2025.py.
set -euo pipefail
./asr_ser.sh "$@"
