"""Issue 10, training side: hostile cases around experiments, checkpoints and configs must neither
lose anything nor go silently wrong (each test fails on the code before the fix)."""

import errno
import json
import logging
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from speechser.config import ConfigError
from speechser.train.checkpoint import CheckpointError, load_checkpoint, load_model_state, save_atomic
from speechser.train.experiment import ExperimentError, ExperimentLock
from speechser.tasks.ser import infer_ser, load_ser_config, train_ser


def _args(d: Path, seed: int = 0, epochs: int = 2, **over) -> list:
    args = [
        "--data.train_dir", str(d), "--data.valid_dir", str(d), "--data.label_list", str(d / "emotions.txt"),
        "--data.max_frames", "300", "--model.conf.channels", "16", "--model.conf.embed_dim", "8",
        "--trainer.max_epochs", str(epochs), "--trainer.keep_nbest", "1", "--trainer.average_nbest", "1",
        "--optim.lr", "0.01", "--seed", str(seed),
    ]
    for k, v in over.items():
        args += [f"--{k}", str(v)]
    return args


def _conf(d: Path, seed: int = 0, epochs: int = 2, **over):
    return load_ser_config(None, _args(d, seed, epochs, **over))


def _one_epoch(d: Path, exp: Path, seed: int = 0, **over) -> None:
    """A run killed after its first epoch (checkpoint.pt at epoch 1, 1epoch.pt)."""
    assert train_ser(_conf(d, seed, **over), exp, stop_after_epoch=1) == {"stopped_at": 1}


# -- 1. a failed resume must not rewrite config.yaml ---------------------------------------------
def test_resume_with_changed_model_keeps_config_and_names_keys(make_feats_dir, tmp_path: Path, train_seed):
    d = make_feats_dir()
    exp = tmp_path / "exp"
    _one_epoch(d, exp, train_seed)
    before = (exp / "config.yaml").read_bytes()
    with pytest.raises(ExperimentError, match=r"model\.conf\.channels: 16 -> 32") as e:
        train_ser(_conf(d, train_seed, **{"model.conf.channels": 32}), exp)
    assert "allow_config_change" in str(e.value) and "resume false" in str(e.value)
    assert (exp / "config.yaml").read_bytes() == before
    # told to take the change: the checkpoint does not fit, which is an error naming it; config untouched
    with pytest.raises(ExperimentError, match=r"checkpoint\.pt does not fit"):
        train_ser(_conf(d, train_seed, **{"model.conf.channels": 32, "trainer.allow_config_change": "true"}), exp)
    assert (exp / "config.yaml").read_bytes() == before
    # the existing model still decodes with the stored config
    scores = infer_ser(exp, exp / "1epoch.pt", d, tmp_path / "decode")
    assert 0.0 <= scores["ua"] <= 1.0
    # starting over is explicit, and moves the old run aside instead of destroying it
    train_ser(_conf(d, train_seed, epochs=1, **{"model.conf.channels": 32, "trainer.resume": "false"}), exp)
    (backup,) = exp.glob("backup.*")
    assert (backup / "config.yaml").read_bytes() == before
    assert load_checkpoint(backup / "checkpoint.pt")["epoch"] == 1 and (backup / "1epoch.pt").is_file()
    assert "channels: 32" in (exp / "config.yaml").read_text()


def test_resume_with_accepted_change_replaces_config_only_after_loading(make_feats_dir, tmp_path: Path, train_seed):
    d = make_feats_dir()
    exp = tmp_path / "exp"
    _one_epoch(d, exp, train_seed)
    with pytest.raises(ExperimentError, match=r"optim\.weight_decay: .* -> 0\.125"):
        train_ser(_conf(d, train_seed, epochs=3, **{"optim.weight_decay": 0.125}), exp)
    out = train_ser(_conf(d, train_seed, epochs=3, **{"optim.weight_decay": 0.125,
                                                      "trainer.allow_config_change": "true"}), exp)
    assert out["epochs"] == 3
    assert "weight_decay: 0.125" in (exp / "config.yaml").read_text()
    # run-only keys (device, workers, logging) are not a difference
    train_ser(_conf(d, train_seed, epochs=3, **{"optim.weight_decay": 0.125, "trainer.log_interval": 7,
                                                "trainer.device": "cpu"}), exp)


# -- 2. resuming with other data -----------------------------------------------------------------
def test_resume_with_other_data_is_refused(make_feats_dir, tmp_path: Path, train_seed):
    d = make_feats_dir()
    other = make_feats_dir(n_utt=3, name="other")
    exp = tmp_path / "exp"
    _one_epoch(d, exp, train_seed)
    fingerprint = json.loads((exp / "data_fingerprint.json").read_text())
    assert fingerprint["data.train_dir"]["n_utts"] == 8 and len(fingerprint["data.train_dir"]["keys_sha256"]) == 64
    before = (exp / "config.yaml").read_bytes()
    # another directory: named by its key
    with pytest.raises(ExperimentError, match=r"data\.train_dir: '.*' -> '.*other'"):
        train_ser(_conf(d, train_seed, **{"data.train_dir": other}), exp)
    # the same directory, regenerated with other utterances (another fold): named by the fingerprint
    (d / "feats.scp").unlink()
    shutil.copyfile(other / "feats.scp", d / "feats.scp")
    with pytest.raises(ExperimentError, match=r"data\.train_dir: the utterances of .* differ .*8 utterances.*now 6"):
        train_ser(_conf(d, train_seed), exp)
    assert (exp / "config.yaml").read_bytes() == before
    assert load_checkpoint(exp / "checkpoint.pt")["epoch"] == 1


# -- 3. two trainings in one directory -----------------------------------------------------------
def test_second_training_in_a_locked_directory_is_refused(make_feats_dir, tmp_path: Path, train_seed, capsys):
    from speechser.bin.train_ser import main

    d = make_feats_dir()
    exp = tmp_path / "exp"
    exp.mkdir()
    holder = ExperimentLock(exp)
    holder.acquire()
    try:
        info = json.loads((exp / ".lock").read_text())
        assert info["host"] == socket.gethostname() and "started" in info
        with pytest.raises(ExperimentError, match=rf"in use by another training \(pid {info['pid']} on host "):
            train_ser(_conf(d, train_seed, epochs=1), exp)
        assert main(["--exp-dir", str(exp), *_args(d, train_seed, epochs=1)]) == 1
        assert "in use by another training" in capsys.readouterr().err
        assert not (exp / "checkpoint.pt").exists() and not (exp / "config.yaml").exists()
    finally:
        holder.release()
    train_ser(_conf(d, train_seed, epochs=1), exp)
    assert not (exp / ".lock").exists()  # released at the end


def test_lock_held_by_another_process_is_refused(tmp_path: Path):
    exp = tmp_path / "exp"
    exp.mkdir()
    code = ("import sys, time; from speechser.train.experiment import ExperimentLock; "
            "l = ExperimentLock(sys.argv[1]); l.acquire(); print('locked', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(exp)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(ExperimentError, match=rf"pid {proc.pid} on host"):
            ExperimentLock(exp).acquire()
    finally:
        proc.kill()
        proc.wait()
    lock = ExperimentLock(exp)  # the holder was killed: its lock is stale and taken over
    lock.acquire()
    lock.release()


def test_stale_lock_is_taken_over_with_a_warning(make_feats_dir, tmp_path: Path, train_seed, caplog):
    d = make_feats_dir()
    exp = tmp_path / "exp"
    exp.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (exp / ".lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started": "x"}))
    with caplog.at_level(logging.WARNING):
        train_ser(_conf(d, train_seed, epochs=1), exp)
    assert f"stale lock {exp / '.lock'} (pid {dead.pid}" in caplog.text
    assert (exp / "checkpoint.pt").is_file()


# -- 4. damaged checkpoints ----------------------------------------------------------------------
def _damage(p: Path, how: str) -> None:
    data = p.read_bytes()
    if how == "truncated":
        p.write_bytes(data[: len(data) // 2])
    elif how == "bitflip":
        b = bytearray(data)
        b[len(b) // 2] ^= 0x10  # inside the weights: torch itself would load it silently
        p.write_bytes(bytes(b))
    elif how == "empty":
        p.write_bytes(b"")
    else:
        p.write_text("this is not a checkpoint\n")


@pytest.mark.parametrize("how", ["truncated", "bitflip", "empty", "text"])
def test_damaged_checkpoint_names_file(tmp_path: Path, how):
    p = tmp_path / "3epoch.pt"
    save_atomic({"w": torch.randn(200, 50), "input_dim": torch.tensor(40)}, p)
    _damage(p, how)
    with pytest.raises(CheckpointError, match=rf"{p}: damaged or not a checkpoint"):
        load_model_state(p)


def test_damaged_resume_checkpoint_says_how_to_recover(make_feats_dir, tmp_path: Path, train_seed):
    d = make_feats_dir()
    exp = tmp_path / "exp"
    assert train_ser(_conf(d, train_seed, epochs=3), exp, stop_after_epoch=2) == {"stopped_at": 2}
    # the last epoch's file is kept besides the n best, to go on from
    assert (exp / "2epoch.pt").is_file()
    _damage(exp / "checkpoint.pt", "truncated")
    with pytest.raises(CheckpointError) as e:
        train_ser(_conf(d, train_seed, epochs=3), exp)
    msg = str(e.value)
    assert f"{exp / 'checkpoint.pt'}: damaged" in msg and "2epoch.pt" in msg
    assert f"--trainer.resume false --trainer.init_param '[{exp / '2epoch.pt'}]'" in msg
    # following the advice works, and keeps the damaged run
    train_ser(_conf(d, train_seed, epochs=1, **{"trainer.resume": "false",
                                                 "trainer.init_param": f"[{exp / '2epoch.pt'}]"}), exp)
    (backup,) = exp.glob("backup.*")
    assert (backup / "checkpoint.pt").is_file() and (backup / "2epoch.pt").is_file()
    assert str(backup / "2epoch.pt") in (exp / "config.yaml").read_text()
    assert load_checkpoint(exp / "checkpoint.pt")["epoch"] == 1


# -- 5. disk full --------------------------------------------------------------------------------
@pytest.mark.parametrize("error", [
    OSError(errno.ENOSPC, "No space left on device"),
    RuntimeError("[enforce fail at inline_container.cc:595] . unexpected pos 1234 vs 1190"),
    RuntimeError("PytorchStreamWriter failed writing file data/3: file write failed"),
])
def test_disk_full_at_save_says_so_and_keeps_old_file(tmp_path: Path, monkeypatch, error):
    p = tmp_path / "checkpoint.pt"
    save_atomic({"epoch": 1}, p)

    def full(obj, f, *a, **k):
        Path(f).write_bytes(b"partial")
        raise error

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(CheckpointError, match=rf"cannot write {p}: the disk is full .* {tmp_path} .*MiB free.*kept"):
        save_atomic({"epoch": 2}, p)
    monkeypatch.undo()
    assert torch.load(p, weights_only=False) == {"epoch": 1}
    assert [q.name for q in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_disk_full_during_training(make_feats_dir, tmp_path: Path, train_seed, monkeypatch):
    d = make_feats_dir()
    exp = tmp_path / "exp"
    _one_epoch(d, exp, train_seed)

    def full(obj, f, *a, **k):
        raise RuntimeError("[enforce fail at inline_container.cc:595] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(CheckpointError, match="the disk is full"):
        train_ser(_conf(d, train_seed), exp)
    monkeypatch.undo()
    assert load_checkpoint(exp / "checkpoint.pt")["epoch"] == 1
    assert not list(exp.glob(".*.tmp*"))
    assert train_ser(_conf(d, train_seed), exp)["epochs"] == 2  # resumes once there is room


# -- 6. out-of-range config values ---------------------------------------------------------------
@pytest.mark.parametrize("key,value", [
    ("trainer.max_epochs", 0), ("trainer.max_epochs", -1), ("data.max_batch_size", -4), ("data.max_frames", 0),
    ("data.num_workers", -1), ("optim.lr", -0.1), ("optim.weight_decay", -1e-4),
    ("model.conf.dropout", 1.5), ("model.conf.dropout", -0.1), ("trainer.grad_clip", 0),
    ("trainer.keep_nbest", 0), ("trainer.accum_grad", 0), ("model.conf.label_smoothing", 1.0),
    ("trainer.best_mode", "maximum"),
])
def test_out_of_range_value_names_key(key, value):
    base = ["--data.train_dir", "a", "--data.valid_dir", "b", "--data.label_list", "c",
            "--trainer.keep_nbest", "1", "--trainer.average_nbest", "1"]
    with pytest.raises(ConfigError, match=rf"config key '{key}'"):
        load_ser_config(None, [*base, f"--{key}", str(value)])


def test_nested_model_key_and_average_more_than_kept():
    from speechser.tasks.asr import load_asr_config

    with pytest.raises(ConfigError, match=r"config key 'model\.conf\.encoder\.dropout': 1\.5 is out of range"):
        load_asr_config(None, ["--data.train_dir", "a", "--data.valid_dir", "b", "--model.conf.encoder.dropout",
                               "1.5"])
    with pytest.raises(ConfigError, match=r"config key 'trainer\.average_nbest': 3 is more than keep_nbest \(2\)"):
        load_ser_config(None, ["--data.train_dir", "a", "--data.valid_dir", "b", "--data.label_list", "c",
                               "--trainer.keep_nbest", "2", "--trainer.average_nbest", "3"])


def test_max_epochs_zero_is_an_error_not_an_empty_success(make_feats_dir, tmp_path: Path, capsys):
    from speechser.bin.train_ser import main

    d = make_feats_dir()
    exp = tmp_path / "exp"
    assert main(["--exp-dir", str(exp), *_args(d, epochs=0)]) == 1
    assert "config key 'trainer.max_epochs': 0 is out of range" in capsys.readouterr().err
    assert not (exp / "config.yaml").exists()


def test_ddp_locked_directory_stops_every_rank(make_feats_dir, tmp_path: Path, train_seed):
    """Only rank 0 locks; when it is refused, rank 1 stops too instead of waiting for it in DDP."""
    import os
    import socket as sk

    d = make_feats_dir()
    exp = tmp_path / "exp"
    exp.mkdir()
    with sk.socket(sk.AF_INET, sk.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    holder = ExperimentLock(exp)
    holder.acquire()
    try:
        env = dict(os.environ, OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1")
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
               "-m", "speechser.bin.train_ser", "--exp-dir", str(exp), *_args(d, train_seed, epochs=1),
               "--trainer.device", "cpu"]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    finally:
        holder.release()
    assert proc.returncode != 0
    assert "in use by another training" in proc.stderr
    assert "another process of this distributed training refused" in proc.stderr
    assert not (exp / "checkpoint.pt").exists()


def test_inference_tools_name_a_damaged_checkpoint_without_a_traceback(tmp_path, make_feats_dir, run_main):
    """decode-asr and infer-ser catch CheckpointError: exit 1 with the file named, no traceback."""

    d = make_feats_dir(n_spk=1, n_utt=2)
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"PK\x03\x04 this is not a torch checkpoint")
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "config.yaml").write_text(
        f"data:\n  train_dir: {d}\n  valid_dir: {d}\n  token_list: {d}/tokens.txt\n  cmvn_type: none\n")
    (d / "tokens.txt").write_text("<blank>\n<unk>\n<space>\nh\n")
    proc = run_main("decode_asr", "--exp-dir", str(exp), "--checkpoint", str(bad), "--data-dir", str(d),
               "--out-dir", str(tmp_path / "dec"))
    assert proc.returncode == 1 and str(bad) in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    (exp / "config.yaml").write_text(f"data:\n  train_dir: {d}\n  valid_dir: {d}\n  label_list: {d}/emotions.txt\n")
    proc = run_main("infer_ser", "--exp-dir", str(exp), "--checkpoint", str(bad), "--data-dir", str(d),
               "--out-dir", str(tmp_path / "inf"))
    assert proc.returncode == 1 and str(bad) in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_extending_a_finished_run_is_a_resume_not_a_config_change(make_feats_dir, tmp_path: Path, train_seed):
    """More epochs (the usual reason to resume) is allowed, and config.yaml then says how many were run."""
    from speechser.config import read_yaml

    d = make_feats_dir()
    exp = tmp_path / "exp"
    train_ser(_conf(d, train_seed, epochs=1), exp)
    assert read_yaml(exp / "config.yaml")["trainer"]["max_epochs"] == 1
    summary = train_ser(_conf(d, train_seed, epochs=2), exp)
    assert summary["epochs"] == 2
    assert read_yaml(exp / "config.yaml")["trainer"]["max_epochs"] == 2
    import torch

    assert torch.load(exp / "checkpoint.pt", weights_only=False)["epoch"] == 2
