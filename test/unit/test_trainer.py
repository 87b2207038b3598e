from pathlib import Path

import pytest
import torch

from speechser.train.checkpoint import average_checkpoints, save_atomic
from speechser.tasks.ser import infer_ser, load_ser_config, train_ser


def _conf(d: Path, seed: int, epochs: int = 4, **over):
    args = [
        "--data.train_dir", str(d), "--data.valid_dir", str(d), "--data.label_list", str(d / "emotions.txt"),
        "--data.max_frames", "300", "--model.conf.channels", "16", "--model.conf.embed_dim", "8",
        "--trainer.max_epochs", str(epochs), "--trainer.keep_nbest", "2", "--trainer.average_nbest", "2",
        "--optim.lr", "0.01", "--seed", str(seed),
    ]
    for k, v in over.items():
        args += [f"--{k}", str(v)]
    return load_ser_config(None, args)


def test_resume_equals_uninterrupted(make_feats_dir, tmp_path: Path, train_seed):
    """Both runs are in this process, with its thread count: the same floating-point path, so a
    correct resume (weights, optimizer, scheduler, RNG and sampler state) gives the same bits."""
    d = make_feats_dir()
    full = tmp_path / "full"
    train_ser(_conf(d, train_seed), full)
    part = tmp_path / "part"
    out = train_ser(_conf(d, train_seed), part, stop_after_epoch=2)
    assert out == {"stopped_at": 2}
    assert torch.load(part / "checkpoint.pt", weights_only=False)["epoch"] == 2
    train_ser(_conf(d, train_seed), part)  # resumes from checkpoint.pt at epoch 2
    a = torch.load(full / "checkpoint.pt", weights_only=False)
    b = torch.load(part / "checkpoint.pt", weights_only=False)
    assert a["epoch"] == b["epoch"] == 4
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert a["nbest"] == b["nbest"]
    # only the n best epoch files and the last one are kept, plus the best and the average
    kept = sorted(p.name for p in full.glob("*epoch.pt"))
    assert kept == sorted({f"{ep}epoch.pt" for _, ep in a["nbest"]} | {"4epoch.pt"})
    assert kept == sorted(p.name for p in part.glob("*epoch.pt"))
    assert (full / "valid.ua.best.pt").is_file() and (full / "valid.ua.ave_2best.pt").is_file()
    assert (full / "config.yaml").is_file()
    assert [ln.split("\t")[0] for ln in (part / "train_stats.tsv").read_text().splitlines()] == ["epoch", "1", "2", "3", "4"]


def test_inference_writes_posteriors(make_feats_dir, tmp_path: Path, train_seed):
    d = make_feats_dir()
    exp = tmp_path / "exp"
    train_ser(_conf(d, train_seed, epochs=2), exp)
    scores = infer_ser(exp, exp / "valid.ua.ave_2best.pt", d, exp / "decode")
    lines = (exp / "decode" / "posteriors.tsv").read_text().splitlines()
    assert lines[0] == "utt\tang\tneu" and len(lines) == 9
    probs = [sum(map(float, ln.split("\t")[1:])) for ln in lines[1:]]
    assert all(abs(p - 1) < 1e-4 for p in probs)
    assert 0.0 <= scores["ua"] <= 1.0
    assert len((exp / "decode" / "hyp").read_text().splitlines()) == 8


def test_average_checkpoints(tmp_path: Path):
    a = {"w": torch.tensor([1.0, 3.0]), "n": torch.tensor(1)}
    b = {"w": torch.tensor([3.0, 5.0]), "n": torch.tensor(7)}
    save_atomic(a, tmp_path / "a.pt")
    save_atomic({"model": b, "epoch": 3}, tmp_path / "b.pt")
    avg = average_checkpoints([tmp_path / "a.pt", tmp_path / "b.pt"])
    assert torch.equal(avg["w"], torch.tensor([2.0, 4.0])) and int(avg["n"]) == 7
    with pytest.raises(ValueError):
        average_checkpoints([])


def test_atomic_save_keeps_old_file_on_failure(tmp_path: Path):
    p = tmp_path / "checkpoint.pt"
    save_atomic({"x": 1}, p)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        save_atomic({"x": Unpicklable()}, p)
    assert torch.load(p, weights_only=False) == {"x": 1}
    assert [q.name for q in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_unknown_label_in_training_data_names_file_line(make_feats_dir, tmp_path: Path):
    from speechser.io.datadir import DataDirError

    d = make_feats_dir()
    text = (d / "utt2emo").read_text().replace("spkA-u1 neu", "spkA-u1 xyz")
    (d / "utt2emo").write_text(text)
    with pytest.raises(DataDirError, match=r"utt2emo:2: unknown label 'xyz' for utterance 'spkA-u1'"):
        train_ser(_conf(d, 0, epochs=1), tmp_path / "exp")


def test_sigkill_mid_training_then_resume_matches(make_feats_dir, tmp_path: Path, train_seed):
    """A real kill (SIGKILL, at whatever point it lands) leaves a resumable directory. Every run is a
    process with OMP_NUM_THREADS=1, so the compared runs take the same floating-point path."""
    import os
    import signal
    import subprocess
    import sys
    import time

    d = make_feats_dir()
    args = ["--data.train_dir", str(d), "--data.valid_dir", str(d), "--data.label_list", str(d / "emotions.txt"),
            "--data.max_frames", "300", "--model.conf.channels", "16", "--model.conf.embed_dim", "8",
            "--trainer.max_epochs", "8", "--optim.lr", "0.01", "--seed", str(train_seed)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "speechser.bin.train_ser"]
    full = tmp_path / "full"
    subprocess.run([*cmd, "--exp-dir", str(full), *args], env=env, check=True, capture_output=True)
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*cmd, "--exp-dir", str(killed), *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (killed / "train_stats.tsv").is_file() and (killed / "train_stats.tsv").read_text().count("\n") >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "training ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    state = torch.load(killed / "checkpoint.pt", weights_only=False)
    assert 2 <= state["epoch"] < 8
    subprocess.run([*cmd, "--exp-dir", str(killed), *args], env=env, check=True, capture_output=True)
    a = torch.load(full / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(killed / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
