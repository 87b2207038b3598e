"""Hostile recipe runs (issue 10: nothing lost, nothing silently wrong): bad stage/job counts, failed jobs.

The stage scripts run for real (bash) in a throw-away recipe directory whose console scripts are
stand-ins, so a test takes well under a second."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UTILS = ROOT / "utils"
TEMPLATES = {
    "ser": ROOT / "egs/TEMPLATE/ser1/ser.sh",
    "asr": ROOT / "egs/TEMPLATE/asr1/asr.sh",
    "asr_ser": ROOT / "egs/TEMPLATE/asr_ser1/asr_ser.sh",
}


def run(args, cwd=None, check=False):
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def make_recipe(tmp_path: Path, fakes: dict) -> Path:
    """A recipe directory with the template stage scripts, utils/, and stand-in console scripts in bin/."""
    r = tmp_path / "recipe"
    (r / "bin").mkdir(parents=True)
    (r / "utils").symlink_to(UTILS)
    for name, path in TEMPLATES.items():
        (r / f"{name}.sh").symlink_to(path)
    (r / "path.sh").write_text('export PATH="${PWD}/bin:${PATH}"\nexport LC_ALL=C\n')
    (r / "cmd.sh").write_text('export feats_cmd="utils/run.pl"\nexport train_cmd="utils/run.pl"\n'
                              'export infer_cmd="utils/run.pl"\n')
    for name, body in fakes.items():
        script = r / "bin" / name
        script.write_text("#!/usr/bin/env bash\n" + body)
        script.chmod(0o755)
    return r


# --- 7. non-integer --stage / --stop_stage / --nj --------------------------------------------------------

@pytest.mark.parametrize("opt,value", [("--stage", "abc"), ("--stop_stage", "7x"), ("--nj", "0"),
                                       ("--nj", "two"), ("--stage", "-1"), ("--stage", "")])
def test_parse_options_rejects_bad_counters(tmp_path: Path, opt: str, value: str):
    script = tmp_path / "s.sh"
    script.write_text("#!/usr/bin/env bash\nstage=1\nstop_stage=100\nnj=2\n"
                      f". {UTILS}/parse_options.sh || exit 1\necho ran stage=$stage\n")
    proc = run(["bash", script, opt, value])
    assert proc.returncode != 0 and "ran" not in proc.stdout
    assert f"option {opt} must be an integer" in proc.stderr and f"'{value}'" in proc.stderr


def test_parse_options_accepts_good_counters(tmp_path: Path):
    script = tmp_path / "s.sh"
    script.write_text("#!/usr/bin/env bash\nstage=1\nstop_stage=100\nnj=2\nname=x\n"
                      f". {UTILS}/parse_options.sh || exit 1\necho stage=$stage stop=$stop_stage nj=$nj\n")
    proc = run(["bash", script, "--stage", "0", "--stop_stage=12", "--nj", "16"], check=True)
    assert proc.stdout.strip() == "stage=0 stop=12 nj=16"


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_stage_script_with_non_integer_stage_fails(tmp_path: Path, template: str):
    r = make_recipe(tmp_path, {})
    proc = run(["bash", f"{template}.sh", "--stage", "abc"], cwd=r)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "option --stage must be an integer" in out
    assert "integer expression expected" not in out and "Successfully finished" not in out


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_stage_after_stop_stage_is_an_error(tmp_path: Path, template: str):
    """Beyond the issue's cases: --stage 9 --stop_stage 3 ran nothing and exited 2 with no message (SER)."""
    r = make_recipe(tmp_path, {})
    proc = run(["bash", f"{template}.sh", "--stage", "9", "--stop_stage", "3"], cwd=r)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "--stage 9 is after --stop_stage 3" in out, out


def test_ser_training_stage_without_folds_says_so(tmp_path: Path):
    """Beyond the issue's cases: a training stage with no folds made died silently with rc 2 (ls under pipefail)."""
    r = make_recipe(tmp_path, {})
    proc = run(["bash", "ser.sh", "--stage", "6", "--stop_stage", "6", "--protocol", "random10"], cwd=r)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "no folds in data/random10/" in out, out


def test_decode_asr_without_an_experiment_names_its_config(tmp_path: Path, run_main):
    """Beyond the issue's cases: speechser-decode-asr on a missing experiment ended in a ConfigError traceback."""
    proc = run_main("decode_asr", "--exp-dir", tmp_path / "none", "--checkpoint", "x", "--data-dir", tmp_path,
                    "--out-dir", tmp_path / "o", cwd=tmp_path)
    assert proc.returncode == 1 and "none/config.yaml: no such config file" in proc.stderr
    assert "Traceback" not in proc.stderr


# --- 6. a failed inference job fails its stage ----------------------------------------------------------

def _ser_stage6(tmp_path: Path, infer_body: str):
    r = make_recipe(tmp_path, {"speechser-infer-ser": infer_body})
    for k in (1, 2):
        (r / f"data/loso/fold{k}/test").mkdir(parents=True)
        old = r / f"exp/train/loso/fold{k}/decode_test"
        old.mkdir(parents=True)
        (old / "hyp").write_text("u1 ang\n")  # left by an earlier run
    return r, run(["bash", "ser.sh", "--stage", "6", "--stop_stage", "6", "--train_config", "conf/train.yaml"], cwd=r)


def test_ser_inference_stage_fails_when_a_job_fails(tmp_path: Path):
    # fold 2's job fails; its old hyp must not let the stage pass
    body = ('out=""; while [ $# -gt 0 ]; do [ "$1" = --out-dir ] && out=$2; shift; done\n'
            'case "$out" in *fold2*) echo "boom: model broken" >&2; exit 1 ;; esac\n'
            'mkdir -p "$out"; echo "u1 neu" > "$out/hyp"\n')
    r, proc = _ser_stage6(tmp_path, body)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "infer.fold2.log" in out and "Successfully finished" not in out
    assert "boom: model broken" in (r / "exp/train/loso/logs/infer.fold2.log").read_text()
    assert not (r / "exp/train/loso/fold2/decode_test/hyp").exists()  # the stale output is gone


def test_ser_inference_stage_passes_when_every_job_passes(tmp_path: Path):
    body = ('out=""; while [ $# -gt 0 ]; do [ "$1" = --out-dir ] && out=$2; shift; done\n'
            'mkdir -p "$out"; echo "u1 neu" > "$out/hyp"\n')
    r, proc = _ser_stage6(tmp_path, body)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Successfully finished" in proc.stdout
    assert (r / "exp/train/loso/fold2/decode_test/hyp").read_text() == "u1 neu\n"


def test_run_pl_job_array_fails_when_one_job_fails_naming_its_log(tmp_path: Path):
    proc = run([UTILS / "run.pl", "JOB=1:4", tmp_path / "log/j.JOB.log", "test", "JOB", "-ne", "3"])
    assert proc.returncode != 0
    assert "j.3.log" in proc.stderr and "j.1.log" not in proc.stderr
