#!/usr/bin/env bash
# Run a speechser console script: utils/console.sh speechser-<tool> [args...]. The utils/ wrappers of
# the Python tools call this; it takes the project's .venv (beside utils/) when there is one, so they
# work without path.sh, and else the console script on PATH.
root=$(cd -P "$(dirname "$0")/.." && pwd)
tool=$1
shift
[ -x "${root}/.venv/bin/${tool}" ] && tool="${root}/.venv/bin/${tool}"
exec "${tool}" "$@"
