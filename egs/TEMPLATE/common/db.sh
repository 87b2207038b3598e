# Where the corpora and pretrained models live: the one list every recipe reads (a recipe's db.sh is a link
# to this file, or sources it and adds the recipe's own lines). An environment variable SPEECHSER_<NAME>
# wins; else the default below, which points at ../shared/ beside the project checkout (corpora/ and
# models/). Set the variable, or edit the default here for your site.
# shellcheck disable=SC2034  # the variables are for the scripts that source this file (local/data.sh, run.sh)
_shared=$(cd -P "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../../../.." && pwd)/shared
_corpora=${_shared}/corpora

# Corpora shared with the project (freely distributed):
EMODB=${SPEECHSER_EMODB:-${_corpora}/emodb}              # Berlin Emo-DB: the folder holding wav/
AN4=${SPEECHSER_AN4:-${_corpora}/an4}                    # CMU AN4: the folder holding etc/ and wav/
# Corpora you obtain under their own licence (not shared): point each at your copy.
IEMOCAP=${SPEECHSER_IEMOCAP:-${_corpora}/iemocap/IEMOCAP_full_release}  # USC; the IEMOCAP_full_release folder
MSP_PODCAST=${SPEECHSER_MSP_PODCAST:-${_corpora}/msp_podcast}  # UT Dallas; the root with Audios/, Labels/, Transcripts/
CREMA_D=${SPEECHSER_CREMA_D:-${_corpora}/crema_d}        # CREMA-D (ODbL): the folder holding AudioWAV/
RAVDESS=${SPEECHSER_RAVDESS:-${_corpora}/ravdess}        # RAVDESS (CC BY-NC-SA): the folder of Actor_*/
EMOV_DB=${SPEECHSER_EMOV_DB:-${_corpora}/emov_db}        # EmoV-DB: the folder of the speakers' archives
VIVOS=${SPEECHSER_VIVOS:-${_corpora}/vivos}              # VIVOS (CC BY-NC-SA): the folder holding train/ and test/
VLSP2025=${SPEECHSER_VLSP2025:-${_corpora}/vlsp2025}     # the VLSP 2025 ASR-SER release (challenge participants)
# A new corpus: add its variable here, the environment first, then where it usually is, and read it in the
# recipe's local/data.sh (". ./db.sh" is its first line), e.g.
#   MYCORPUS=${SPEECHSER_MYCORPUS:-${_corpora}/mycorpus}   # the folder the distributor's archive unpacks to

# Pretrained models (a local directory, or a hub name where the machine can download):
WHISPER_BASE=${SPEECHSER_WHISPER_BASE:-${_shared}/models/whisper-base-encoder}

# Lists for on-the-fly training augmentation (data.augment in the training configs), Kaldi wav.scp files
# ("<id> <path>" or "<id> <command> |"): noise recordings and room impulse responses. Empty: that
# augmentation is off (asr_ser.sh --noise_scp/--rir_scp; it logs so).
NOISE_SCP=${SPEECHSER_NOISE_SCP:-}
RIR_SCP=${SPEECHSER_RIR_SCP:-}
