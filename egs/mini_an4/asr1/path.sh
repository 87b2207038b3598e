# Put the project's tools on PATH: a Python environment with speechser, and utils/.
# The environment, in this order: SPEECHSER_VENV (a virtual environment's folder), the project's own .venv
# (make install), else the Python already on PATH when it has speechser installed (an activated or conda
# environment). Only when none of them has speechser is there a warning, saying how to get one.
# The recipe's utils/ links to the project's utils/, so its parent is the project root.
MAIN_ROOT=$(cd -P "$(dirname "${BASH_SOURCE[0]}")/utils/.." && pwd)
if [ -n "${SPEECHSER_VENV:-}" ]; then
    if [ -f "${SPEECHSER_VENV}/bin/activate" ]; then
        # shellcheck source=/dev/null  # the user's virtual environment
        . "${SPEECHSER_VENV}/bin/activate"
    else
        echo "path.sh: SPEECHSER_VENV=${SPEECHSER_VENV} has no bin/activate (not a virtual environment)" >&2
    fi
elif [ -f "${MAIN_ROOT}/.venv/bin/activate" ]; then
    # shellcheck source=/dev/null  # the virtual environment's own script, written by make install
    . "${MAIN_ROOT}/.venv/bin/activate"
elif ! command -v speechser-model-path > /dev/null; then  # no environment on PATH has speechser's commands
    echo "path.sh: no Python environment with speechser: run 'make install' in ${MAIN_ROOT}, activate an" \
         "environment where speechser is installed, or set SPEECHSER_VENV to one" >&2
fi
export PATH="${PWD}/utils:${PATH}"
export LC_ALL=C
export PYTHONUNBUFFERED=1
