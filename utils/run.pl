#!/usr/bin/env bash
# Kaldi's run.pl interface: run.pl [opts] JOB=1:N log/x.JOB.log cmd ... (local jobs, one log each).
# Implemented in speechser (speechser.jobs:main_run_pl); run with --help for usage.
root=$(cd -P "$(dirname "$0")/.." && pwd)
py=python3
[ -x "${root}/.venv/bin/python" ] && py="${root}/.venv/bin/python"
exec "${py}" -c 'import sys; from speechser.jobs import main_run_pl as m; sys.exit(m())' "$@"
