#!/usr/bin/env bash
# Create .venv and install speechser (editable) with its pinned dependencies.
# Idempotent: when the installed state matches setup.py, it only checks and exits.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
stamp="${VENV}/.speechser-installed"
want=$(sha256sum setup.py | cut -d' ' -f1)

if [ ! -x "${VENV}/bin/python" ]; then
    echo "tools/install.sh: creating ${VENV}"
    "${PYTHON}" -m venv "${VENV}"
fi
if [ -f "${stamp}" ] && [ "$(cat "${stamp}")" = "${want}" ] && "${VENV}/bin/python" tools/check_env.py --quiet; then
    echo "tools/install.sh: ${VENV} is up to date"
    exit 0
fi
"${VENV}/bin/python" -m pip install --upgrade --quiet pip wheel setuptools
# torch and torchaudio first, on their own: the largest download, cached by pip for later installs.
"${VENV}/bin/python" -m pip install --quiet "torch==2.9.1" "torchaudio==2.9.1"
"${VENV}/bin/python" -m pip install --quiet -e ".[test]"
"${VENV}/bin/python" tools/check_env.py
echo "${want}" > "${stamp}"
