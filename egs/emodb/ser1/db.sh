# Where the corpora and the pretrained models live. Environment variables win; the defaults point at
# ../shared/corpora and ../shared/models beside the project checkout.
# shellcheck disable=SC2034  # the variables are for the scripts that source this file (local/data.sh, run.sh)
_shared=$(cd -P "$(dirname "${BASH_SOURCE[0]}")/utils/../.." && pwd)/shared
EMODB=${SPEECHSER_EMODB:-${_shared}/corpora/emodb}
AN4=${SPEECHSER_AN4:-${_shared}/corpora/an4}
WHISPER_BASE=${SPEECHSER_WHISPER_BASE:-${_shared}/models/whisper-base-encoder}
