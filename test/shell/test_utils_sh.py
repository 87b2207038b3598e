"""The Kaldi-style tools in utils/, run as a user runs them (bash, subprocesses)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UTILS = ROOT / "utils"


def run(args, cwd=None, env_extra=None, check=True, input=None):
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    env.update(env_extra or {})
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, input=input)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_parse_options(tmp_path: Path):
    script = tmp_path / "s.sh"
    script.write_text(
        "#!/usr/bin/env bash\nstage=1\nnj_jobs=4\nname=a\n"
        f". {UTILS}/parse_options.sh || exit 1\n"
        'echo "stage=$stage nj_jobs=$nj_jobs name=$name args=$*"\n'
    )
    out = run(["bash", script, "--stage", "3", "--nj-jobs=8", "--name", "x y", "pos1", "pos2"]).stdout
    assert out.strip() == "stage=3 nj_jobs=8 name=x y args=pos1 pos2"
    bad = run(["bash", script, "--nope", "1"], check=False)
    assert bad.returncode != 0 and "unknown option --nope" in bad.stderr
    missing = run(["bash", script, "--stage"], check=False)
    assert missing.returncode != 0 and "needs a value" in missing.stderr


def test_run_pl_job_array_and_failure(tmp_path: Path):
    out = run([UTILS / "run.pl", "JOB=1:3", tmp_path / "log/x.JOB.log", "echo", "job", "JOB"])
    assert out.returncode == 0
    for i in (1, 2, 3):
        text = (tmp_path / f"log/x.{i}.log").read_text()
        assert f"job {i}" in text and "Ended (code 0)" in text
    fail = run([UTILS / "run.pl", "JOB=1:3", tmp_path / "log/f.JOB.log", "test", "JOB", "-ne", "2"], check=False)
    assert fail.returncode == 1
    assert "1 / 3 failed" in fail.stderr and "f.2.log" in fail.stderr
    single = run([UTILS / "run.pl", tmp_path / "log/one.log", "false"], check=False)
    assert single.returncode == 1 and "one.log" in single.stderr
    # the end of the failed job's own output is repeated on the terminal (not the runner's '#' lines)
    job = tmp_path / "job.sh"
    job.write_text("echo loading\necho 'error: exp/x/valid.acc.ave_5best.pt: no such file' >&2\nexit 3\n")
    named = run([UTILS / "run.pl", tmp_path / "log/model.log", "bash", job], check=False)
    assert named.returncode == 1 and "job failed with status 3" in named.stderr
    assert named.stderr.splitlines()[-2:] == ["    loading", "    error: exp/x/valid.acc.ave_5best.pt: no such file"]
    usage = run([UTILS / "run.pl", "JOB=1:2", tmp_path / "nojob.log", "true"], check=False)
    assert usage.returncode == 2 and "must contain JOB" in usage.stderr


def test_run_pl_max_jobs_and_pipes(tmp_path: Path):
    run([UTILS / "run.pl", "--max-jobs-run", "1", "JOB=1:2", tmp_path / "p.JOB.log",
         "echo", "hello", "JOB", "|", "tr", "a-z", "A-Z"])
    assert "HELLO 2" in (tmp_path / "p.2.log").read_text()


def test_slurm_pl_with_fake_sbatch(tmp_path: Path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    calls = tmp_path / "sbatch_calls"
    # A fake sbatch: records its arguments and runs the array tasks (or the one job) one by one.
    (bindir / "sbatch").write_text(
        "#!/usr/bin/env bash\n"
        f'echo "$@" >> {calls}\n'
        'range=""; for a in "$@"; do case "$a" in --array=*) range=${a#--array=};; esac; done\n'
        'script="${@: -1}"\n'
        'first=${range%-*}; last=${range#*-}; last=${last%%%*}\n'
        'if [ -z "$range" ]; then bash "$script"; else\n'
        'for i in $(seq $first $last); do SLURM_ARRAY_TASK_ID=$i bash "$script"; done; fi\n'
        "echo 12345\n"
    )
    (bindir / "sbatch").chmod(0o755)
    env = {"PATH": f"{bindir}:{Path(sys.executable).parent}:{os.environ['PATH']}"}
    out = run([UTILS / "slurm.pl", "--mem", "2G", "--gpu", "1", "JOB=1:3", tmp_path / "log/s.JOB.log",
               "echo", "task", "JOB"], env_extra=env, cwd=tmp_path)
    assert out.returncode == 0
    for i in (1, 2, 3):
        assert f"task {i}" in (tmp_path / f"log/s.{i}.log").read_text()
    args = calls.read_text()
    assert "--array=1-3" in args and "--mem=2G" in args and "--gres=gpu:1" in args and "--nodes" not in args
    # a training over 2 nodes: one job (not an array) over 2 nodes, one task a node (speechser-launch's srun)
    out = run([UTILS / "slurm.pl", "--gpu", "4", "--num-nodes", "2", tmp_path / "log/n.log", "echo", "nodes"],
              env_extra=env, cwd=tmp_path)
    assert out.returncode == 0 and "nodes" in (tmp_path / "log/n.log").read_text()
    last = calls.read_text().splitlines()[-1]
    assert "--nodes=2" in last and "--ntasks-per-node=1" in last and "--gres=gpu:4" in last and "--array" not in last
    fail = run([UTILS / "slurm.pl", "JOB=1:2", tmp_path / "log/g.JOB.log", "test", "JOB", "=", "1"],
               env_extra=env, cwd=tmp_path, check=False)
    assert fail.returncode == 1 and "g.2.log" in fail.stderr
    (bindir / "sbatch").write_text("#!/usr/bin/env bash\necho 'sbatch: error: invalid partition' >&2\nexit 1\n")
    broken = run([UTILS / "slurm.pl", tmp_path / "log/b.log", "true"], env_extra=env, cwd=tmp_path, check=False)
    assert broken.returncode == 2 and "invalid partition" in broken.stderr


def test_run_pl_refuses_more_than_one_node(tmp_path: Path):
    out = run([UTILS / "run.pl", "--num-nodes", "2", tmp_path / "t.log", "true"], check=False)
    assert out.returncode == 2 and "run.pl runs jobs on this machine only" in out.stderr
    assert not (tmp_path / "t.log").exists()
    assert run([UTILS / "run.pl", "--num-nodes", "1", "--gpu", "2", tmp_path / "t.log", "true"]).returncode == 0


def test_data_dir_tools_end_to_end(make_data_dir, tmp_path: Path):
    d = make_data_dir(n_spk=3, n_utt=2)
    assert "OK (6 utterances)" in run([UTILS / "validate_data_dir.sh", "--no-feats", d]).stdout
    # break sorting: the validator names file and line, fix_data_dir repairs it
    lines = (d / "utt2spk").read_text().splitlines()
    (d / "utt2spk").write_text("\n".join(reversed(lines)) + "\n")
    bad = run([UTILS / "validate_data_dir.sh", "--no-feats", d], check=False)
    assert bad.returncode == 1 and "utt2spk:2" in bad.stderr and "not sorted" in bad.stderr
    run([UTILS / "fix_data_dir.sh", d])
    run([UTILS / "validate_data_dir.sh", "--no-feats", "--labels", f"utt2emo={d}/emotions.txt", d])
    (tmp_path / "spks").write_text("spkB\n")
    run([UTILS / "subset_data_dir.sh", "--spk-list", tmp_path / "spks", d, tmp_path / "sub"])
    assert (tmp_path / "sub/utt2spk").read_text() == "spkB-u0 spkB\nspkB-u1 spkB\n"
    run([UTILS / "subset_data_dir.sh", "--first", "1", d, tmp_path / "first"])
    run([UTILS / "copy_data_dir.sh", "--utt-prefix", "sp1.1-", "--spk-prefix", "sp1.1-", d, tmp_path / "sp"])
    run([UTILS / "combine_data.sh", tmp_path / "comb", d, tmp_path / "sp"])
    assert "OK (12 utterances)" in run([UTILS / "validate_data_dir.sh", "--no-feats", tmp_path / "comb"]).stdout
    run([UTILS / "split_scp", "--utt2spk", d / "utt2spk", d / "wav.scp", tmp_path / "w1", tmp_path / "w2",
         tmp_path / "w3"])
    assert [len((tmp_path / f"w{i}").read_text().splitlines()) for i in (1, 2, 3)] == [2, 2, 2]
    (tmp_path / "ids").write_text("spkA-u1\n")
    assert run([UTILS / "filter_scp", tmp_path / "ids", d / "utt2emo"]).stdout == "spkA-u1 neu\n"
    assert run([UTILS / "filter_scp", "--exclude", tmp_path / "ids", d / "utt2emo"]).stdout.count("\n") == 5
    spk2utt = run([UTILS / "utt2spk_to_spk2utt", d / "utt2spk"]).stdout
    assert spk2utt == (d / "spk2utt").read_text()
    assert run([UTILS / "spk2utt_to_utt2spk"], input=spk2utt).stdout == (d / "utt2spk").read_text()


def test_validate_reports_unknown_label_and_missing_audio(make_data_dir, tmp_path: Path):
    d = make_data_dir()
    (tmp_path / "labels").write_text("ang\n")
    bad = run([UTILS / "validate_data_dir.sh", "--no-feats", "--labels", f"utt2emo={tmp_path}/labels", d],
              check=False)
    assert bad.returncode == 1 and "utt2emo:2: unknown label 'neu'" in bad.stderr
    (d / "wav.scp").unlink()
    bad = run([UTILS / "validate_data_dir.sh", "--no-feats", d], check=False)
    assert bad.returncode == 1 and "wav.scp: no such file" in bad.stderr and "--no-wav" in bad.stderr


@pytest.mark.parametrize("tool", ["validate_data_dir.sh", "fix_data_dir.sh", "subset_data_dir.sh", "run.pl"])
def test_tools_are_executable(tool):
    assert os.access(UTILS / tool, os.X_OK)


def test_each_tool_fails_clearly(make_data_dir, tmp_path: Path):
    d = make_data_dir()
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        ([UTILS / "fix_data_dir.sh", empty], "neither utt2spk nor spk2utt"),
        ([UTILS / "subset_data_dir.sh", "--first", "0", d, tmp_path / "o1"], "first must be positive"),
        ([UTILS / "copy_data_dir.sh", tmp_path / "missing", tmp_path / "o2"], "missing/utt2spk: no such file"),
        ([UTILS / "combine_data.sh", tmp_path / "o3", d, d], "is in both"),
        ([UTILS / "split_scp", d / "wav.scp", *[tmp_path / f"s{i}" for i in range(7)]],
         "cannot split 6 group(s) into 7"),
        ([UTILS / "filter_scp", "-f", "3", d / "utt2spk", d / "utt2spk"], "utt2spk:1: fewer than 3 field(s)"),
        ([UTILS / "utt2spk_to_spk2utt", tmp_path / "missing"], "no such file"),
    ]
    for args, message in cases:
        proc = run(args, check=False)
        assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
        assert message in proc.stderr, (args, proc.stderr)
    dup = run([UTILS / "spk2utt_to_utt2spk"], input="a u1 u2\nb u2\n", check=False)
    assert dup.returncode == 1 and "utterance 'u2' belongs to two speakers" in dup.stderr
