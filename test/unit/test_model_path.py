"""speechser-model-path: the model later stages use follows from what the trainer wrote, and a missing one is
named with what the experiment has instead (issue 16: fewer epochs than the averaging count)."""

from __future__ import annotations

from pathlib import Path

from speechser.bin.model_path import main as model_path


def _exp(tmp_path: Path, metric: str, files) -> Path:
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "config.yaml").write_text(f"model:\n  name: x\ntrainer:\n  best_metric: {metric}\n  average_nbest: 5\n")
    for name in files:
        (exp / name).write_bytes(b"")
    return exp


def test_the_averaged_model_whatever_its_count(tmp_path: Path, capsys):
    # 3 epochs with average_nbest 5: the trainer averaged 3; that is the model, not a missing ave_5best
    exp = _exp(tmp_path, "acc", ["valid.acc.ave_3best.pt", "valid.acc.best.pt", "checkpoint.pt", "valid.loss.best.pt"])
    assert model_path(["--exp-dir", str(exp)]) == 0
    assert capsys.readouterr().out.strip() == str(exp / "valid.acc.ave_3best.pt")
    assert model_path(["--exp-dir", str(exp), "--name", "valid.acc.best.pt"]) == 0
    assert capsys.readouterr().out.strip() == str(exp / "valid.acc.best.pt")


def test_best_then_last_when_nothing_was_averaged(tmp_path: Path, capsys):
    exp = _exp(tmp_path, "ua", ["valid.ua.best.pt", "checkpoint.pt", "valid.acc.ave_2best.pt"])
    assert model_path(["--exp-dir", str(exp)]) == 0
    assert capsys.readouterr().out.strip() == str(exp / "valid.ua.best.pt")  # the config's metric, not acc


def test_a_missing_model_is_named_with_what_there_is(tmp_path: Path, capsys):
    exp = _exp(tmp_path, "acc", ["valid.acc.ave_3best.pt", "valid.acc.best.pt"])
    assert model_path(["--exp-dir", str(exp), "--name", "valid.acc.ave_5best.pt"]) == 1
    err = capsys.readouterr().err
    assert f"{exp}/valid.acc.ave_5best.pt: no such model" in err and "valid.acc.ave_3best.pt, valid.acc.best.pt" in err
    empty = tmp_path / "untrained"
    empty.mkdir()
    assert model_path(["--exp-dir", str(empty)]) == 1
    assert "no config.yaml" in capsys.readouterr().err
    (empty / "config.yaml").write_text("trainer:\n  best_metric: acc\n")
    assert model_path(["--exp-dir", str(empty)]) == 1
    err = capsys.readouterr().err
    assert "no trained model" in err and "has no *.pt file" in err
