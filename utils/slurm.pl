#!/usr/bin/env bash
# Kaldi's slurm.pl interface: same arguments as run.pl, submitted as one sbatch array.
# Implemented in speechser (console script speechser-slurm-pl); run with --help for usage.
exec "$(dirname "$0")/console.sh" speechser-slurm-pl "$@"
