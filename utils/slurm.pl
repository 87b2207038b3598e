#!/usr/bin/env bash
# Kaldi's slurm.pl interface: same arguments as run.pl, submitted as one sbatch array.
# Implemented in speechser (speechser.jobs:main_slurm_pl); run with --help for usage.
root=$(cd -P "$(dirname "$0")/.." && pwd)
py=python3
[ -x "${root}/.venv/bin/python" ] && py="${root}/.venv/bin/python"
exec "${py}" -c 'import sys; from speechser.jobs import main_slurm_pl as m; sys.exit(m())' "$@"
