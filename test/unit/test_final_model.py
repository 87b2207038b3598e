"""The final model on every speaker takes the choices the cross-validation folds made on their validation
sets: a closed-form model's C and hidden states (the most folds' choice), a trained model's number of
epochs (the median of the folds' best epochs), its last epochs averaged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from speechser.config import ConfigError
from speechser.tasks.final_model import final_settings


def _fold(root: Path, name: str, model: str, **files: str) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(f"model:\n  name: {model}\ntrainer:\n  best_metric: ua\n  best_mode: max\n"
                                   "  keep_nbest: 5\n  average_nbest: 3\n")
    for fname, text in files.items():
        (d / fname.replace("__", ".")).write_text(text)
    return d


def _stats(best_epoch: int, n: int = 10) -> str:
    rows = ["epoch\ttrain_loss\tvalid_ua\tseconds"]
    rows += [f"{e}\t1.0\t{0.9 - abs(e - best_epoch) * 0.01:.5f}\t1.0" for e in range(1, n + 1)]
    return "\n".join(rows) + "\n"


def test_a_trained_model_takes_the_median_of_the_folds_best_epochs(tmp_path):
    folds = [_fold(tmp_path, f"fold{i}", "tdnn_ser", train_stats__tsv=_stats(b)) for i, b in enumerate([4, 7, 6], 1)]
    s = final_settings(folds)
    assert s.overrides == ["--trainer.max_epochs", "6", "--trainer.best_metric", "epoch", "--trainer.best_mode", "max",
                           "--trainer.patience", "0", "--trainer.keep_nbest", "5", "--trainer.average_nbest", "3"]
    assert s.details["fold_best_epochs"] == [4, 7, 6] and "median of the folds' best epochs" in s.summary
    short = [_fold(tmp_path / "s", f"fold{i}", "tdnn_ser", train_stats__tsv=_stats(2)) for i in (1, 2)]
    assert final_settings(short).overrides[-4:] == ["--trainer.keep_nbest", "2", "--trainer.average_nbest", "2"]


def test_a_linear_model_takes_the_setting_most_folds_chose(tmp_path):
    fits = [{"C": 1.0, "blocks": [0, 2], "valid_ua": 0.8}, {"C": 0.1, "blocks": [1], "valid_ua": 0.95},
            {"C": 1.0, "blocks": [0, 2], "valid_ua": 0.7}]
    folds = [_fold(tmp_path, f"fold{i}", "linear_ser", linear_fit__json=json.dumps(f)) for i, f in enumerate(fits, 1)]
    s = final_settings(folds)
    assert s.overrides == ["--model.conf.Cs", "[1.0]", "--model.conf.block_sets", "[[0, 2]]"]
    assert "chosen by 2 of 3 folds" in s.summary
    # a tie: the choice whose folds validated better
    tie = [_fold(tmp_path / "t", f"fold{i}", "linear_ser", linear_fit__json=json.dumps(f))
           for i, f in enumerate(fits[:2], 1)]
    assert final_settings(tie).overrides[1] == "[0.1]"


def test_missing_records_are_named(tmp_path):
    with pytest.raises(ConfigError, match="linear_fit.json: no such file"):
        final_settings([_fold(tmp_path, "fold1", "linear_ser")])
    with pytest.raises(ConfigError, match="train_stats.tsv: no such file"):
        final_settings([_fold(tmp_path, "fold2", "tdnn_ser")])


def test_training_ranked_by_epoch_keeps_and_averages_the_last_epochs(make_feats_dir, tmp_path, train_seed):
    from speechser.tasks.ser import load_ser_config, train_ser

    d = make_feats_dir(n_spk=2, n_utt=3)
    summary = train_ser(load_ser_config(None, [
        "--data.train_dir", str(d), "--data.valid_dir", str(d), "--data.label_list", str(d / "emotions.txt"),
        "--trainer.max_epochs", "4", "--trainer.best_metric", "epoch", "--trainer.keep_nbest", "2",
        "--trainer.average_nbest", "2", "--seed", str(train_seed)]), tmp_path / "final")
    assert [ep for _, ep in summary["nbest"]] == [4, 3]
    assert sorted(p.name for p in (tmp_path / "final").glob("*epoch.pt")) == ["3epoch.pt", "4epoch.pt"]
    assert (tmp_path / "final/valid.epoch.ave_2best.pt").is_file()
