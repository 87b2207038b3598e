# Where the corpora live. Environment variables win; the defaults point at
# ../shared/corpora beside the project checkout.
# shellcheck disable=SC2034  # the variables are for the scripts that source this file (local/data.sh, run.sh)
_corpora=$(cd -P "$(dirname "${BASH_SOURCE[0]}")/utils/../.." && pwd)/shared/corpora
EMODB=${SPEECHSER_EMODB:-${_corpora}/emodb}
AN4=${SPEECHSER_AN4:-${_corpora}/an4}
# a pretrained encoder for the CPU-sized configuration (conf/train_whisper_probe.yaml)
WHISPER_BASE=${SPEECHSER_WHISPER_BASE:-${_corpora}/../models/whisper-base-encoder}
# IEMOCAP is licensed by USC and not among the shared corpora: point this at your IEMOCAP_full_release.
IEMOCAP=${SPEECHSER_IEMOCAP:-${_corpora}/iemocap/IEMOCAP_full_release}
# MSP-Podcast is licensed by UT Dallas (the MSP lab) and not among the shared corpora: point this at your
# release root, the folder holding Audios/, Labels/ and Transcripts/.
MSP_PODCAST=${SPEECHSER_MSP_PODCAST:-${_corpora}/msp_podcast}
# Lists for on-the-fly training augmentation (data.augment in the training configs), Kaldi wav.scp files
# ("<id> <path>" or "<id> <command> |"): noise recordings and room impulse responses. Empty: that
# augmentation is off (asr_ser.sh --noise_scp/--rir_scp; it logs so).
NOISE_SCP=${SPEECHSER_NOISE_SCP:-}
RIR_SCP=${SPEECHSER_RIR_SCP:-}
