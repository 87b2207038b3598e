# Put the project's tools on PATH: its virtual environment and utils/.
# The recipe's utils/ links to the project's utils/, so its parent is the project root.
MAIN_ROOT=$(cd -P "$(dirname "${BASH_SOURCE[0]}")/utils/.." && pwd)
if [ -f "${MAIN_ROOT}/.venv/bin/activate" ]; then
    # shellcheck source=/dev/null  # the virtual environment's own script, written by make install
    . "${MAIN_ROOT}/.venv/bin/activate"
else
    echo "path.sh: ${MAIN_ROOT}/.venv not found; run 'make install' in ${MAIN_ROOT}" >&2
fi
export PATH="${PWD}/utils:${PATH}"
export LC_ALL=C
export PYTHONUNBUFFERED=1
