# How jobs run: utils/run.pl on this machine, or utils/slurm.pl on a Slurm cluster
# (the options --num-threads, --mem, --gpu, --time, --partition go to sbatch).
export feats_cmd="utils/run.pl"
export train_cmd="utils/run.pl"
export infer_cmd="utils/run.pl"
# On Slurm, for example:
# export train_cmd="utils/slurm.pl --mem 8G --gpu 1 --time 4:00:00"
