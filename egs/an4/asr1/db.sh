# Where the corpora live. Environment variables win; the defaults point at
# ../shared/corpora beside the project checkout.
# shellcheck disable=SC2034  # the variables are for the scripts that source this file (local/data.sh, run.sh)
_corpora=$(cd -P "$(dirname "${BASH_SOURCE[0]}")/utils/../.." && pwd)/shared/corpora
EMODB=${SPEECHSER_EMODB:-${_corpora}/emodb}
AN4=${SPEECHSER_AN4:-${_corpora}/an4}
