"""Device-agnostic paths that run on a CPU: bf16 autocast, and DDP over gloo with two processes."""

import os
import subprocess
import sys
from pathlib import Path

import torch

from speechser.tasks.ser import load_ser_config, train_ser


def _args(d: Path, seed: int):
    return ["--data.train_dir", str(d), "--data.valid_dir", str(d), "--data.label_list", str(d / "emotions.txt"),
            "--data.max_frames", "300", "--model.conf.channels", "16", "--model.conf.embed_dim", "8",
            "--trainer.max_epochs", "2", "--optim.lr", "0.01", "--seed", str(seed)]


def test_bf16_autocast_training(make_feats_dir, tmp_path: Path, train_seed):
    d = make_feats_dir()
    amp = ["--trainer.use_amp", "true", "--trainer.amp_dtype", "bfloat16"]
    conf = load_ser_config(None, _args(d, train_seed) + amp)
    summary = train_ser(conf, tmp_path / "exp")
    assert summary["epochs"] == 2
    state = torch.load(tmp_path / "exp" / "checkpoint.pt", weights_only=False)
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _torchrun(nproc: int, *args: str) -> list:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port",
            str(_free_port()), "-m", "speechser.bin.train_ser", *args]


def _stats(exp: Path) -> list:
    import csv

    with open(exp / "train_stats.tsv") as f:
        return [{k: float(v) for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f, delimiter="\t")]


def test_ddp_two_processes_gloo(make_feats_dir, tmp_path: Path, train_seed):
    d = make_feats_dir()
    exp = tmp_path / "exp"
    env = dict(os.environ, OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1")
    cmd = _torchrun(2, "--exp-dir", str(exp), *_args(d, train_seed), "--trainer.device", "cpu")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = torch.load(exp / "checkpoint.pt", weights_only=False)
    assert state["epoch"] == 2
    assert (exp / "valid.ua.ave_2best.pt").is_file()


def test_ddp_backend_follows_the_device_and_a_missing_gpu_is_a_clear_error(monkeypatch):
    """Found on a one-GPU machine: two torchrun processes picked NCCL and cuda:1, which does not exist.
    The backend now follows --trainer.device, and a process without a GPU of its own is an error."""
    from speechser.train import distributed

    calls = []
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda backend: calls.append(backend))
    monkeypatch.setattr(distributed.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(distributed.torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(distributed.torch.cuda, "set_device", lambda i: calls.append(f"cuda:{i}"))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    info = distributed.init_distributed("cpu")
    assert calls == ["gloo"] and info.rank == 1 and info.enabled
    calls.clear()
    import pytest

    with pytest.raises(RuntimeError, match="LOCAL_RANK=1 has no GPU of its own: 1 visible"):
        distributed.init_distributed("auto")
    assert calls == []  # refused before touching CUDA or the process group
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("RANK", "0")
    distributed.init_distributed("cuda")
    assert calls == ["cuda:0", "nccl"]


def test_ddp_two_processes_with_a_staged_model(make_feats_dir, tmp_path: Path, train_seed):
    """metadata_tdnn_ser leaves its SER head out of the loss in stage 1 and freezes layers in stage 2:
    under DDP that needs trainer.find_unused_parameters (set in the staged configs)."""
    from speechser.io.datadir import read_kv

    d = make_feats_dir()
    spk = read_kv(d / "utt2spk")
    (d / "utt2gender").write_text("".join(f"{u} {'f' if s.endswith('A') else 'm'}\n" for u, s in spk.items()))
    exp = tmp_path / "exp"
    env = dict(os.environ, OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1")
    staged = ["--model.name", "metadata_tdnn_ser", "--model.conf.aux_weights", "{utt2gender: 0.5, utt2spk: 0.5}",
              "--model.conf.aux_hidden", "8", "--model.conf.co_attention_heads", "2", "--model.conf.stage1_epochs", "1",
              "--model.conf.stage2_freeze", "1", "--trainer.find_unused_parameters", "true", "--trainer.max_epochs", "3"]
    cmd = _torchrun(2, "--exp-dir", str(exp), *_args(d, train_seed), *staged, "--trainer.device", "cpu")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert torch.load(exp / "checkpoint.pt", weights_only=False)["epoch"] == 3
    s2, s3 = (torch.load(exp / f"{e}epoch.pt", weights_only=False) for e in (2, 3))
    s2, s3 = (s.get("model", s) for s in (s2, s3))
    assert torch.equal(s2["stem.0.weight"], s3["stem.0.weight"])  # frozen in stage 2 on both ranks


def test_two_gloo_processes_train_the_same_weights_as_one_with_accumulation(make_feats_dir, tmp_path: Path,
                                                                              train_seed):
    """Issue 17: the same config (accum_grad 2, meant for one process) under 2 processes accumulates 1 batch
    per rank (the global batch kept; logged), each rank taking every other batch of the same shuffled order,
    gradients averaged: so 2 processes and 1 see the same global batches, and with the randomness of training
    off (dropout, SpecAugment) end with the same parameters (within 1e-4; the batch-norm running statistics
    are buffers, which DDP takes from rank 0, and are left out) and log the same training loss and validation
    metrics (each rank validates its shard, the metrics are reduced over the ranks). A run of 2 processes
    resumed by 1 process (resume across a change of N) ends there too."""
    d = make_feats_dir(n_spk=2, n_utt=8)
    quiet = ["--model.conf.dropout", "0", "--model.conf.use_specaug", "false", "--data.max_batch_size", "2",
             "--data.max_frames", "100000", "--trainer.accum_grad", "2",
             # a schedule of the step alone: the resumed run's first part stops after 1 of the 2 epochs
             "--scheduler.name", "noam", "--scheduler.warmup_steps", "4"]
    env = dict(os.environ, OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1")
    two, half = tmp_path / "two", tmp_path / "half"
    for exp, nproc, extra in ((two, 2, []), (half, 2, ["--trainer.max_epochs", "1"])):
        proc = subprocess.run(_torchrun(nproc, "--exp-dir", str(exp), *_args(d, train_seed), *quiet, *extra,
                                        "--trainer.device", "cpu"), env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert "accum_grad 2 -> 1; 2 x 1 x 100000 frames per update" in (two / "train.log").read_text()
    runs = (("one", "2"), ("one_no_accum", "1"), ("half", "2"))  # "half": epoch 2 resumed by one process
    for name, accum in runs:
        proc = subprocess.run([sys.executable, "-m", "speechser.bin.train_ser", "--exp-dir", str(tmp_path / name),
                               *_args(d, train_seed), *quiet, "--trainer.accum_grad", accum],
                              env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resumed from" in (half / "train.log").read_text()

    def weights(exp: Path, epoch: int) -> dict:
        state = torch.load(exp / f"{epoch}epoch.pt", weights_only=False)
        state = state.get("model", state)
        return {k: v for k, v in state.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))}

    def gap(x: dict, y: dict) -> float:
        assert set(x) == set(y) and x
        return max(float((x[k] - y[k]).abs().max()) for k in x)

    ddp = weights(two, 2)
    assert gap(ddp, weights(tmp_path / "one", 2)) < 1e-4
    assert gap(ddp, weights(half, 2)) < 1e-4
    # the check can fail: training moved the weights, and one process without accumulation (twice the
    # updates, half the batch) ends elsewhere
    assert gap(ddp, weights(two, 1)) > 1e-3
    assert gap(ddp, weights(tmp_path / "one_no_accum", 2)) > 1e-3
    # The logged metrics of the 2 processes (each rank validated its shard, merged) are those of their saved
    # model over the whole validation set, evaluated here in one process as the trainer does.
    from speechser.data.ser_dataset import collate_feats_labels
    from speechser.data.loader import bucketed_loader
    from speechser.tasks.ser import _dataset, load_experiment

    ser = load_experiment(two, two / "2epoch.pt", device="cpu")
    ds = _dataset(ser.conf.data, str(d), ser.labels, train=False)
    loader, _ = bucketed_loader(ds, ds.lengths, collate_feats_labels, 100000, 2, False, 0)
    evaluator = ser.model.make_evaluator()
    with torch.no_grad():
        for batch in loader:
            evaluator.update(ser.model(batch), batch)
    whole = evaluator.compute()
    assert evaluator.count == 16
    s2, s1 = _stats(two), _stats(tmp_path / "one")
    assert {k for k in s2[-1] if k.startswith("valid_")} == {f"valid_{k}" for k in whole}
    for k, v in whole.items():
        assert abs(s2[-1][f"valid_{k}"] - v) < 2e-5, k
    # and the training loss, summed over the ranks, is the one process's (the same batches, the same weights;
    # training-mode batch norm uses the batch's statistics). The validation metrics are not compared with the
    # one process's: under DDP the batch-norm running statistics are rank 0's (DDP broadcasts its buffers),
    # gathered from half the batches, and on 16 utterances they move the validation loss by up to 0.1.
    assert [r["epoch"] for r in s2] == [r["epoch"] for r in s1] == [1.0, 2.0]
    for a, b in zip(s2, s1):
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-3
