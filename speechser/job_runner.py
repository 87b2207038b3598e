"""Parallel job launching with Kaldi's ``run.pl`` / ``slurm.pl`` interface.

``run.pl [opts] JOB=1:N log/name.JOB.log command args...`` runs the command N
times with ``JOB`` replaced by 1..N in the log path and the command, each
job's output in its own log. ``run.pl log/name.log command`` runs one job.
The exit status is non-zero when any job fails, and the message names the
failed jobs' logs. ``slurm.pl`` takes the same arguments and submits the jobs
as one ``sbatch`` array, then waits for them.

Options (both launchers accept all; ``run.pl`` ignores the resource ones):
``--max-jobs-run N`` (run.pl: at most N at a time), ``--num-threads N``,
``--mem 4G``, ``--gpu N`` (per node), ``--time 1:00:00``, ``--partition P``,
``--num-nodes M`` (slurm.pl: one job over M nodes, ``sbatch --nodes M
--ntasks-per-node 1``, in which ``speechser-launch`` starts one ``torchrun`` per
node with ``srun``; run.pl refuses more than 1: it has one machine).
"""

from __future__ import annotations

import datetime
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence

JOB_RANGE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(\d+):(\d+)$")


class JobError(RuntimeError):
    pass


@dataclass
class JobSpec:
    var: Optional[str]
    first: int
    last: int
    log: str
    command: List[str]
    max_jobs_run: int = 0
    num_threads: int = 1
    mem: str = ""
    gpu: int = 0
    time: str = ""
    partition: str = ""
    num_nodes: int = 1
    extra: List[str] = field(default_factory=list)

    def indices(self) -> List[int]:
        return list(range(self.first, self.last + 1)) if self.var else [0]

    def substitute(self, text: str, index: int) -> str:
        return text.replace(self.var, str(index)) if self.var else text

    def log_for(self, index: int) -> Path:
        return Path(self.substitute(self.log, index))

    def command_for(self, index: int) -> str:
        return " ".join(_quote(self.substitute(arg, index)) for arg in self.command)


def _quote(arg: str) -> str:
    """Quote an argument unless it is plain or a shell operator the user meant (as Kaldi does)."""
    if arg in ("|", "||", "&&", ";", ">", ">>", "<", "2>", "2>&1", "&>"):
        return arg
    if re.fullmatch(r"[A-Za-z0-9_./:=,+@%-]+", arg):
        return arg
    return shlex.quote(arg)


def parse_args(argv: Sequence[str], prog: str) -> JobSpec:
    """Parse ``[--opt value]... [VAR=a:b] log command...``."""
    args = list(argv)
    opts = {"max_jobs_run": 0, "num_threads": 1, "mem": "", "gpu": 0, "time": "", "partition": "", "num_nodes": 1}
    while args and args[0].startswith("--"):
        name = args.pop(0)[2:].replace("-", "_")
        if "=" in name:
            name, value = name.split("=", 1)
        else:
            if not args:
                raise JobError(f"{prog}: option --{name} needs a value")
            value = args.pop(0)
        if name == "config":
            continue
        if name not in opts:
            raise JobError(f"{prog}: unknown option --{name}")
        opts[name] = int(value) if isinstance(opts[name], int) else value
    var, first, last = None, 1, 1
    if args and JOB_RANGE.match(args[0]):
        m = JOB_RANGE.match(args.pop(0))
        assert m
        var, first, last = m.group(1), int(m.group(2)), int(m.group(3))
        if last < first:
            raise JobError(f"{prog}: empty job range {var}={first}:{last}")
    if len(args) < 2:
        raise JobError(f"usage: {prog} [options] [JOB=1:N] <log-file> <command> [args...]")
    log = args.pop(0)
    if var and var not in log:
        raise JobError(f"{prog}: the log file '{log}' must contain {var} for a job array")
    if int(opts["num_nodes"]) < 1:
        raise JobError(f"{prog}: --num-nodes {opts['num_nodes']}: need at least 1")
    return JobSpec(var, first, last, log, args, **opts)  # type: ignore[arg-type]


def _header(command: str) -> str:
    return f"# {command}\n# Started at {datetime.datetime.now().ctime()}\n#\n"


def _run_one(spec: JobSpec, index: int) -> int:
    log = spec.log_for(index)
    log.parent.mkdir(parents=True, exist_ok=True)
    command = spec.command_for(index)
    env = dict(os.environ)
    if spec.num_threads > 0:
        env.setdefault("OMP_NUM_THREADS", str(spec.num_threads))
    start = time.time()
    with open(log, "w", encoding="utf-8") as f:
        f.write(_header(command))
        f.flush()
        proc = subprocess.run(["bash", "-c", command], stdout=f, stderr=subprocess.STDOUT, env=env)
        f.write(f"# Accounting: time={int(time.time() - start)} threads={spec.num_threads}\n")
        f.write(f"# Ended (code {proc.returncode}) at {datetime.datetime.now().ctime()}, "
                f"elapsed time {int(time.time() - start)} seconds\n")
    return proc.returncode


#: Lines of a failed job's log repeated on the terminal (its own output, not the runner's "#" lines).
FAILED_LOG_LINES = 3


def log_tail(log: Path, n: int = FAILED_LOG_LINES) -> List[str]:
    """The last ``n`` non-empty lines of a job's log that the job wrote (the runner's ``#`` header and
    accounting lines left out); [] for a missing log."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    return [ln for ln in lines if ln.strip() and ln != "#" and not ln.startswith("# ")][-n:]


def _report(prog: str, spec: JobSpec, codes: dict) -> int:
    """Name the failed jobs' logs and repeat the end of the first one, so that the error (a missing model,
    a bad option) shows on the terminal and not only in the log; 1 when a job failed."""
    failed = [i for i, c in codes.items() if c != 0]
    if not failed:
        return 0
    if spec.var:
        logs = ", ".join(str(spec.log_for(i)) for i in failed[:5])
        print(f"{prog}: {len(failed)} / {len(codes)} failed, see {logs}", file=sys.stderr)
    else:
        print(f"{prog}: job failed with status {codes[0]}, log is in {spec.log_for(0)}", file=sys.stderr)
    tail = log_tail(spec.log_for(failed[0]))
    if tail:
        print(f"{prog}: the end of {spec.log_for(failed[0])}:", *(f"    {ln}" for ln in tail), sep="\n", file=sys.stderr)
    return 1


def run_local(argv: Sequence[str]) -> int:
    """``run.pl``: run the jobs on this machine."""
    spec = parse_args(argv, "run.pl")
    if spec.num_nodes > 1:
        raise JobError(f"run.pl: --num-nodes {spec.num_nodes}: run.pl runs jobs on this machine only; a training "
                       "over several nodes needs a cluster (train_cmd=utils/slurm.pl in cmd.sh)")
    indices = spec.indices()
    workers = spec.max_jobs_run if spec.max_jobs_run > 0 else len(indices)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        codes = dict(zip(indices, pool.map(lambda i: _run_one(spec, i), indices)))
    return _report("run.pl", spec, codes)


def _slurm_scripts(spec: JobSpec, qdir: Path) -> Path:
    """One script per job (the substituted command, its log, its done-file),
    and an array wrapper that runs the script of ``$SLURM_ARRAY_TASK_ID``."""
    base = Path(spec.log).name.replace(spec.var, "array") if spec.var else Path(spec.log).name
    for i in spec.indices():
        log = spec.log_for(i).resolve()
        cmd = spec.command_for(i)
        job = qdir / f"{base}.{i}.sh"
        job.write_text(
            "#!/usr/bin/env bash\n"
            f"cd {shlex.quote(os.getcwd())}\n"
            f"mkdir -p {shlex.quote(str(log.parent))}\n"
            f"{{ echo {shlex.quote('# ' + cmd)}; echo \"# Started at $(date)\"; }} > {shlex.quote(str(log))}\n"
            f"( {cmd} ) >> {shlex.quote(str(log))} 2>&1\n"
            "ret=$?\n"
            f"echo \"# Ended (code $ret) at $(date)\" >> {shlex.quote(str(log))}\n"
            f"echo $ret > {shlex.quote(str(qdir / f'done.{i}'))}\n"
            "exit $ret\n",
            encoding="utf-8",
        )
        job.chmod(0o755)
    wrapper = qdir / f"{base}.sh"
    index = "${SLURM_ARRAY_TASK_ID}" if spec.var else "0"
    wrapper.write_text(f"#!/usr/bin/env bash\nexec bash {shlex.quote(str(qdir))}/{base}.{index}.sh\n")
    wrapper.chmod(0o755)
    return wrapper


def run_slurm(argv: Sequence[str], poll_seconds: float = 5.0) -> int:
    """``slurm.pl``: submit one ``sbatch`` array and wait for every job's exit status."""
    spec = parse_args(argv, "slurm.pl")
    if shutil.which("sbatch") is None:
        raise JobError("slurm.pl: sbatch is not on PATH (use run.pl for local jobs)")
    qdir = (spec.log_for(spec.first if spec.var else 0).parent / "q").resolve()
    qdir.mkdir(parents=True, exist_ok=True)
    for old in qdir.glob("done.*"):
        old.unlink()
    script = _slurm_scripts(spec, qdir)
    sb = ["sbatch", "--parsable", f"--output={qdir}/slurm-%A_%a.out", f"--cpus-per-task={spec.num_threads}"]
    if spec.var:
        sb.append(f"--array={spec.first}-{spec.last}" + (f"%{spec.max_jobs_run}" if spec.max_jobs_run else ""))
    if spec.mem:
        sb.append(f"--mem={spec.mem}")
    if spec.gpu:
        sb.append(f"--gres=gpu:{spec.gpu}")
    if spec.num_nodes > 1:
        sb += [f"--nodes={spec.num_nodes}", "--ntasks-per-node=1"]
    if spec.time:
        sb.append(f"--time={spec.time}")
    if spec.partition:
        sb.append(f"--partition={spec.partition}")
    proc = subprocess.run([*sb, str(script)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise JobError(f"slurm.pl: sbatch failed ({proc.returncode}): {proc.stderr.strip()}")
    job_id = proc.stdout.strip().split(";")[0]
    indices = spec.indices()
    pending = set(indices)
    codes: dict = {}
    missing_since: Optional[float] = None
    while pending:
        for i in sorted(pending):
            done = qdir / f"done.{i}"
            if done.is_file() and done.read_text().strip():
                codes[i] = int(done.read_text().strip())
                pending.discard(i)
        if not pending:
            break
        if shutil.which("squeue") is not None:
            q = subprocess.run(["squeue", "-h", "-j", job_id], capture_output=True, text=True)
            if q.returncode == 0 and not q.stdout.strip():
                missing_since = missing_since or time.time()
                if time.time() - missing_since > 60:
                    for i in pending:
                        codes[i] = 255
                    print(f"slurm.pl: job {job_id} left the queue without finishing jobs "
                          f"{sorted(pending)}", file=sys.stderr)
                    break
        time.sleep(poll_seconds)
    return _report("slurm.pl", spec, codes)


def _wants_help(argv: Optional[Sequence[str]]) -> bool:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        return True
    return False


def main_run_pl(argv: Optional[Sequence[str]] = None) -> int:
    if _wants_help(argv):
        return 0
    try:
        return run_local(sys.argv[1:] if argv is None else argv)
    except JobError as err:
        print(err, file=sys.stderr)
        return 2


def main_slurm_pl(argv: Optional[Sequence[str]] = None) -> int:
    if _wants_help(argv):
        return 0
    try:
        return run_slurm(sys.argv[1:] if argv is None else argv)
    except JobError as err:
        print(err, file=sys.stderr)
        return 2
