"""How a recipe starts one training: one process, ``torchrun`` on this node, or one ``torchrun`` per node
of a Slurm allocation through ``srun`` (as ESPnet's ``--ngpu`` and ``--num_nodes``).

``speechser-launch --ngpu N --num-nodes M -- <command> [args...]``:

- ``N <= 1``, ``M = 1``: the command itself, in this process's place (``--ngpu 0``: the stage scripts add
  ``--trainer.device cpu``);
- ``N > 1``, ``M = 1``: ``torchrun --standalone --nproc-per-node N --no-python <command>`` (a free
  rendezvous port on this host, so two trainings on one machine do not collide);
- ``M > 1``: inside a Slurm allocation of M nodes (``utils/slurm.pl --num-nodes M --gpu N``, which
  submits ``sbatch --nodes M --ntasks-per-node 1``): ``srun --nodes M --ntasks M --ntasks-per-node 1
  torchrun --nnodes M --nproc-per-node N --rdzv-backend c10d --rdzv-endpoint <first node>:<port>
  --rdzv-id <job id> --no-python <command>``, one agent per node meeting at the allocation's first node.

The processes then find their rank in torchrun's environment (:func:`speechser.train.distributed
.init_distributed`), and the trainer keeps the global batch whatever ``N · M`` is
(:func:`speechser.train.distributed.plan_global_batch`).
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from typing import List, Mapping, Optional, Sequence

#: torchrun's own default port of the c10d rendezvous; offset by the job id on Slurm (several
#: multi-node jobs may share a first node).
RDZV_PORT = 29400


class LaunchError(RuntimeError):
    pass


def first_host(nodelist: str) -> str:
    """The first host of a Slurm node list: ``gpu[07-09,12],cpu1`` -> ``gpu07``, ``node1,node2`` -> ``node1``
    (what ``scontrol show hostnames | head -1`` prints, without needing scontrol)."""
    m = re.match(r"^([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if not m or not m.group(1):
        raise LaunchError(f"cannot read the Slurm node list {nodelist!r}")
    prefix, ranges = m.group(1), m.group(2)
    if not ranges:
        return prefix
    first = ranges.split(",")[0].split("-")[0]
    return prefix + first


def torchrun(nproc: int, extra: Sequence[str], command: Sequence[str]) -> List[str]:
    """``python -m torch.distributed.run`` of this interpreter (the recipe's environment), running ``command``
    as it is (``--no-python``: a console script such as ``speechser-train-asr``)."""
    return [sys.executable, "-m", "torch.distributed.run", *extra, "--nproc-per-node", str(nproc), "--no-python",
            *command]


def launch_command(ngpu: int, num_nodes: int, command: Sequence[str],
                   env: Optional[Mapping[str, str]] = None, rdzv_port: int = 0) -> List[str]:
    """The command line that starts ``command`` on ``ngpu`` processes per node on ``num_nodes`` nodes
    (see the module docstring). ``env``: the environment to read Slurm's variables from."""
    env = os.environ if env is None else env
    if not command:
        raise LaunchError("no command to launch (speechser-launch [options] -- <command> [args...])")
    if ngpu < 0 or num_nodes < 1:
        raise LaunchError(f"--ngpu {ngpu} --num-nodes {num_nodes}: need ngpu >= 0 and num_nodes >= 1")
    nproc = max(ngpu, 1)
    if num_nodes == 1:
        if nproc == 1:
            return list(command)
        return torchrun(nproc, ["--standalone", "--nnodes", "1"], command)
    job = env.get("SLURM_JOB_ID")
    if not job:
        raise LaunchError(f"--num_nodes {num_nodes} runs one torchrun per node of a Slurm allocation, and this is "
                          "not one (no SLURM_JOB_ID): set train_cmd in cmd.sh to utils/slurm.pl, which submits the "
                          "training with sbatch --nodes")
    have = env.get("SLURM_JOB_NUM_NODES") or env.get("SLURM_NNODES")
    if have and int(have) != num_nodes:
        raise LaunchError(f"--num_nodes {num_nodes}, but Slurm job {job} has {have} node(s) (SLURM_JOB_NUM_NODES): "
                          "train_cmd must pass --num-nodes to slurm.pl (the stage scripts do)")
    nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
    if not nodelist:
        raise LaunchError(f"Slurm job {job} names no nodes (SLURM_JOB_NODELIST)")
    port = rdzv_port
    if not port:
        port = RDZV_PORT + (int(job) % 1000 if job.isdigit() else 0)
    rdzv = ["--nnodes", str(num_nodes), "--rdzv-backend", "c10d", "--rdzv-endpoint", f"{first_host(nodelist)}:{port}",
            "--rdzv-id", job]
    srun = ["srun", "--nodes", str(num_nodes), "--ntasks", str(num_nodes), "--ntasks-per-node", "1", "--kill-on-bad-exit=1"]
    return [*srun, *torchrun(nproc, rdzv, command)]


def main(argv: Optional[Sequence[str]] = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="speechser-launch", description=__doc__.split("\n\n")[0],
                                usage="speechser-launch [--ngpu N] [--num-nodes M] [--rdzv-port P] -- command [args...]")
    p.add_argument("--ngpu", type=int, default=1, help="processes (GPUs) per node; 0 and 1: one process")
    p.add_argument("--num-nodes", type=int, default=1, help="nodes (more than 1: inside a Slurm allocation)")
    p.add_argument("--rdzv-port", type=int, default=0, help=f"multi-node rendezvous port (default {RDZV_PORT} + "
                   "the Slurm job id modulo 1000)")
    p.add_argument("--dry-run", action="store_true", help="print the command line and stop")
    args = list(sys.argv[1:] if argv is None else argv)
    if "--" not in args:
        p.error("separate the command from the options with --")
    cut = args.index("--")
    a = p.parse_args(args[:cut])
    try:
        cmd = launch_command(a.ngpu, a.num_nodes, args[cut + 1:], rdzv_port=a.rdzv_port)
    except LaunchError as err:
        print(f"speechser-launch: error: {err}", file=sys.stderr)
        return 2
    nproc = max(a.ngpu, 1) * a.num_nodes
    if nproc > 1 and a.ngpu > 1:
        try:
            import torch

            if not torch.cuda.is_available():
                print(f"speechser-launch: no GPU is visible here: the {nproc} processes train on CPUs (gloo)",
                      file=sys.stderr)
        except ImportError:
            pass
    print(f"speechser-launch: {nproc} process(es): {shlex.join(cmd)}", file=sys.stderr, flush=True)
    if a.dry_run:
        return 0
    os.execvp(cmd[0], cmd)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main())
