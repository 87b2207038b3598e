# Where the corpora live. Environment variables win.
# The VLSP 2025 ASR-SER release is distributed to challenge participants; point SPEECHSER_VLSP2025 at it.
# shellcheck disable=SC2034  # the variables are for the scripts that source this file (local/data.sh, run.sh)
VLSP2025=${SPEECHSER_VLSP2025:-/data/vlsp2025_asr_ser}
# Lists for on-the-fly training augmentation (conf/train_*.yaml, data.augment), Kaldi wav.scp files
# ("<id> <path>" or "<id> <command> |"): noise recordings (e.g. MUSAN noise) and room impulse responses
# (e.g. RIRS_NOISES). Empty: that augmentation is turned off, and the recipe logs so.
NOISE_SCP=${SPEECHSER_NOISE_SCP:-}
RIR_SCP=${SPEECHSER_RIR_SCP:-}
