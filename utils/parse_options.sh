#!/usr/bin/env bash
# Source this after setting default option variables: it turns "--name value"
# (or "--name=value") arguments into assignments of the existing shell
# variable "name" (dashes become underscores), and leaves the positional
# arguments in "$@". An option naming no existing variable is an error.
# "--help" prints $help_message (if set), then the script's options with their
# values (the defaults, or what options before --help set: a recipe's own) and
# end-of-line comments, and exits 0. "--config FILE" sources
# FILE first (it may hold "name=value" lines).
# Usage:  stage=1; nj=4; . utils/parse_options.sh || exit 1
# After parsing, the counters every stage script relies on are checked where
# the script defines them: stage and stop_stage must be integers >= 0; nj,
# threads, train_jobs, threads_per_job and max_jobs_run integers >= 1 (threads may be left empty: in the
# stage scripts it is the former name of threads_per_job, unset unless given). Anything else is
# an error naming the option (a bad value would otherwise make every
# "[ ${stage} -le N ]" guard false and run nothing).

__po_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --help|-h)
            echo "${help_message:-no help message}"
            # Then every option of the script with its default and meaning: the "name=value  # comment"
            # lines from its first option (stage=) to its help_message, section comments as headings.
            # The value shown is the one in force: the script's default, or what the options given before
            # --help set (a recipe's run.sh passes its own before "$@": its values show, marked).
            if [ -f "$0" ] && grep -q "^stage=" "$0"; then
                echo "Options (--name value; default, meaning; * = set by the options given, e.g. run.sh's):"
                sed -n '/^stage=/,/^help_message=/p' "$0" | sed '$d' | sed -n \
                    -e 's/^\([a-z_][a-z0-9_]*\)=\("[^"]*"\|[^ ]*\) *# *\(.*\)$/\1\t\2\t\3/p' \
                    -e 's/^\([a-z_][a-z0-9_]*\)=\("[^"]*"\|[^ ]*\) *$/\1\t\2\t/p' \
                    -e 's/^# \(.*\)$/#\t\1\t/p' |
                while IFS=$'\t' read -r __po_name __po_default __po_comment; do
                    if [ "${__po_name}" = "#" ]; then echo " ${__po_default}:"; continue; fi
                    __po_val=${!__po_name-}
                    __po_shown=${__po_val}
                    [[ -n "${__po_val}" && "${__po_val}" != *" "* ]] || __po_shown="\"${__po_val}\""
                    __po_mark=""
                    [ "${__po_shown}" = "${__po_default}" ] || [ "${__po_val}" = "${__po_default}" ] || __po_mark=" *"
                    printf '  --%s %s%s\t%s\n' "${__po_name}" "${__po_shown}" "${__po_mark}" "${__po_comment}"
                done | sed 's/\t$//' | expand -t 40
            fi
            exit 0 ;;
        --config)
            [ $# -ge 2 ] || { echo "$0: option --config needs a file" >&2; exit 1; }
            [ -f "$2" ] || { echo "$0: config file '$2' not found" >&2; exit 1; }
            # shellcheck source=/dev/null  # the user's config file, known only when the script runs
            . "$2" || { echo "$0: error sourcing config '$2'" >&2; exit 1; }
            shift 2 ;;
        --?*)
            __po_opt=${1#--}
            if [[ "${__po_opt}" == *=* ]]; then
                __po_val=${__po_opt#*=}; __po_opt=${__po_opt%%=*}; shift
            else
                [ $# -ge 2 ] || { echo "$0: option --${__po_opt} needs a value" >&2; exit 1; }
                __po_val=$2; shift 2
            fi
            __po_name=${__po_opt//-/_}
            if ! [[ "${__po_name}" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || [ -z "${!__po_name+set}" ]; then
                echo "$0: unknown option --${__po_opt}" >&2
                exit 1
            fi
            printf -v "${__po_name}" '%s' "${__po_val}" ;;
        --)
            shift; __po_args+=("$@"); break ;;
        *)
            __po_args+=("$1"); shift ;;
    esac
done
set -- "${__po_args[@]+"${__po_args[@]}"}"
for __po_name in stage stop_stage nj threads train_jobs threads_per_job max_jobs_run; do
    [ -n "${!__po_name+set}" ] || continue
    __po_val=${!__po_name}
    [ "${__po_name}" != threads ] || [ -n "${__po_val}" ] || continue
    case "${__po_name}" in
        stage|stop_stage) __po_min=0 ;;
        *) __po_min=1 ;;
    esac
    if ! [[ "${__po_val}" =~ ^[0-9]+$ ]] || [ "$((10#${__po_val}))" -lt "${__po_min}" ]; then
        echo "$0: option --${__po_name} must be an integer >= ${__po_min}, got '${__po_val}'" >&2
        exit 1
    fi
done
if [ -n "${stage+set}" ] && [ -n "${stop_stage+set}" ] && [ "$((10#${stage}))" -gt "$((10#${stop_stage}))" ]; then
    echo "$0: --stage ${stage} is after --stop_stage ${stop_stage}: no stage would run" >&2
    exit 1
fi
unset __po_args __po_opt __po_val __po_name __po_min
true
