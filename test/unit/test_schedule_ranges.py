"""The learning-rate schedule and the seed are range-checked like the other numeric config keys: a value
out of range is a config error naming the dotted key and the allowed range, before anything is trained
(``--scheduler.warmup_epochs 1e30`` used to train at a learning rate of ~2e-33 and exit 0; ``--seed -1``
ended in a traceback from numpy)."""

from __future__ import annotations

from pathlib import Path

import pytest

from speechser.config import ConfigError, load_config
from speechser.tasks.asr import ASRTrainConfig
from speechser.tasks.ser import SERTrainConfig


@pytest.mark.parametrize("cls", [SERTrainConfig, ASRTrainConfig])
@pytest.mark.parametrize("key, value, words", [
    ("scheduler.warmup_epochs", "1e30", ["'scheduler.warmup_epochs'", "1e+30", "[0, 1000]"]),
    ("scheduler.warmup_steps", "20000000", ["'scheduler.warmup_steps'", "[0, 10000000]"]),
    ("scheduler.min_lr_ratio", "2", ["'scheduler.min_lr_ratio'", "[0, 1]"]),
    ("scheduler.name", "cosine", ["'scheduler.name'", "'cosine'", "warmup_cosine"]),
    ("seed", "-1", ["'seed'", "-1", "[0, 4294967295]", "2**32-1"]),
    ("seed", "4294967296", ["'seed'", "[0, 4294967295]"]),
])
def test_schedule_and_seed_out_of_range_are_config_errors(cls, key, value, words):
    with pytest.raises(ConfigError) as err:
        load_config(cls, None, [f"--{key}", value])
    assert all(w in str(err.value) for w in words), str(err.value)


def test_the_bounds_themselves_and_recipe_values_are_accepted(tmp_path: Path):
    conf = load_config(SERTrainConfig, None, ["--seed", "4294967295", "--scheduler.warmup_epochs", "1000",
                                              "--scheduler.min_lr_ratio", "1"])
    assert conf.seed == 2**32 - 1 and conf.scheduler.warmup_epochs == 1000.0
    conf = load_config(ASRTrainConfig, None, ["--seed", "0", "--scheduler.name", "noam",
                                              "--scheduler.warmup_steps", "10000000"])
    assert conf.scheduler.warmup_steps == 10_000_000
    p = tmp_path / "c.yaml"
    p.write_text("seed: 7\nscheduler:\n  warmup_epochs: 2\n  min_lr_ratio: 0.01\n")
    assert load_config(SERTrainConfig, p).scheduler.warmup_epochs == 2.0


def test_a_range_error_from_a_file_names_the_file(tmp_path: Path):
    p = tmp_path / "train.yaml"
    p.write_text("scheduler:\n  warmup_epochs: 1.0e+30\n")
    with pytest.raises(ConfigError, match=r"'scheduler\.warmup_epochs' in .*train\.yaml: .*\[0, 1000\]"):
        load_config(SERTrainConfig, p)


def test_noam_without_warm_up_is_a_config_error():
    with pytest.raises(ConfigError, match=r"'scheduler\.warmup_steps'.*noam.*warmup_epochs above 0"):
        load_config(ASRTrainConfig, None, ["--scheduler.name", "noam", "--scheduler.warmup_steps", "0"])


@pytest.mark.parametrize("option", [["--scheduler.warmup_epochs", "1e30"], ["--seed", "-1"]])
def test_training_refuses_before_touching_the_experiment(make_feats_dir, tmp_path: Path, capsys, option):
    from speechser.bin.train_ser import main

    d = make_feats_dir()
    exp = tmp_path / "exp"
    rc = main(["--exp-dir", str(exp), "--data.train_dir", str(d), "--data.valid_dir", str(d),
               "--data.label_list", str(d / "emotions.txt"), "--trainer.max_epochs", "1", *option])
    err = capsys.readouterr().err
    assert rc == 1 and "speechser-train-ser: error: config key" in err and option[0][2:] in err, err
    assert not (exp / "checkpoint.pt").exists() and not (exp / "config.yaml").exists()


def test_a_warm_up_given_as_a_share_of_the_run_fits_any_amount_of_data(make_feats_dir, tmp_path: Path, caplog):
    """scheduler.warmup_fraction sets the warm-up from the run's own updates (epochs x updates an epoch, from
    the data); a warm-up as long as the run is warned about: its learning rate never peaks."""
    import logging

    from speechser.tasks.ser import load_ser_config, train_ser

    d = make_feats_dir(n_spk=2, n_utt=3)
    base = ["--data.train_dir", str(d), "--data.valid_dir", str(d), "--data.label_list", str(d / "emotions.txt"),
            "--trainer.max_epochs", "2", "--data.max_batch_size", "2"]
    with caplog.at_level(logging.INFO):
        train_ser(load_ser_config(None, base + ["--scheduler.warmup_fraction", "0.25"]), tmp_path / "a")
    assert "schedule warmup_cosine: 6 updates (3 an epoch x 2 epochs), warm-up 2" in caplog.text  # round(1.5)
    assert "never reaches its peak" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO):
        train_ser(load_ser_config(None, base + ["--scheduler.warmup_steps", "1000"]), tmp_path / "b")
    assert "warm-up (1000 updates) is as long as the whole run (6 updates" in caplog.text
    with pytest.raises(ConfigError, match=r"'scheduler\.warmup_fraction'.*\[0, 1\)"):
        load_config(SERTrainConfig, None, ["--scheduler.warmup_fraction", "1.5"])
    conf = load_config(ASRTrainConfig, None, ["--scheduler.name", "noam", "--scheduler.warmup_steps", "0",
                                              "--scheduler.warmup_fraction", "0.1"])
    assert conf.scheduler.warmup_fraction == 0.1  # noam takes its warm-up from the share too
