"""speechser.tasks: experiments are self-contained (config.yaml records the model's sizes and labels, the
files inference needs are copied in), and one loader brings a trained model back from its directory."""

from pathlib import Path

import pytest

from speechser.config import ConfigError, read_yaml
from speechser.io.datadir import DataDirError
from speechser.tasks.experiment_dir import feature_dim, resolve_checkpoint
from speechser.train.checkpoint import CheckpointError
from speechser.train.trainer import TrainerConfig


def test_feature_dim_reads_the_first_matrix_and_names_a_bad_archive(make_feats_dir, tmp_path: Path):
    d = make_feats_dir()
    assert feature_dim(d) == 40
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "feats.scp").write_text(f"u1 {tmp_path / 'missing.ark'}:10\n")
    with pytest.raises(DataDirError, match=r"feats\.scp.*'u1'"):
        feature_dim(bad)


def test_resolve_checkpoint_prefers_the_average_then_the_best_then_the_last(tmp_path: Path):
    conf = TrainerConfig(best_metric="ua")
    with pytest.raises(CheckpointError, match="no trained model"):
        resolve_checkpoint(tmp_path, None, conf)
    for name in ("checkpoint.pt", "valid.ua.best.pt", "valid.ua.ave_5best.pt"):
        (tmp_path / name).write_bytes(b"")
        assert resolve_checkpoint(tmp_path, None, conf).name == name
    assert resolve_checkpoint(tmp_path, "valid.ua.best.pt", conf) == tmp_path / "valid.ua.best.pt"
    with pytest.raises(CheckpointError, match="nope.pt"):
        resolve_checkpoint(tmp_path, "nope.pt", conf)


def test_ser_experiment_records_sizes_and_labels_and_loads_from_its_directory(make_feats_dir, tmp_path: Path,
                                                                                train_seed):
    from speechser.tasks.ser import infer_ser, load_experiment, load_ser_config, train_ser

    d = make_feats_dir()
    args = ["--data.train_dir", str(d), "--data.valid_dir", str(d), "--data.label_list", str(d / "emotions.txt"),
            "--data.max_frames", "300", "--model.conf.channels", "16", "--model.conf.embed_dim", "8",
            "--trainer.max_epochs", "1", "--trainer.keep_nbest", "1", "--trainer.average_nbest", "1",
            "--seed", str(train_seed)]
    exp = tmp_path / "exp"
    train_ser(load_ser_config(None, args), exp)
    saved = read_yaml(exp / "config.yaml")["model"]
    assert saved["input_dim"] == 40 and saved["labels"] == ["ang", "neu"]
    (d / "emotions.txt").rename(d / "emotions.moved")  # the label list is not needed any more
    ser = load_experiment(exp)
    assert ser.labels == ["ang", "neu"] and ser.checkpoint.name == "valid.ua.ave_1best.pt"
    assert not ser.model.training and ser.model.num_classes == 2
    assert 0.0 <= infer_ser(exp, None, d, tmp_path / "decode")["ua"] <= 1.0
    # A config whose sizes disagree with the data is refused, naming the key.
    with pytest.raises(ConfigError, match="model.input_dim"):
        train_ser(load_ser_config(None, args[:6] + ["--data.label_list", str(d / "emotions.moved"),
                                                    "--model.input_dim", "80"]), tmp_path / "exp2")


def test_asr_experiment_carries_its_tokens_and_cmvn(tiny_asr_exp, tmp_path: Path):
    from speechser.tasks.asr import load_experiment

    d, exp = tiny_asr_exp
    token_list = tmp_path / "tokens.txt"
    saved = read_yaml(exp / "config.yaml")["model"]
    assert saved["input_dim"] == 40 and saved["vocab_size"] == len(token_list.read_text().split("\n")) - 1 > 1
    assert (exp / "tokens/tokens.txt").read_text() == token_list.read_text()
    assert (exp / "cmvn.ark").is_file()
    token_list.unlink()  # inference reads the experiment's own copy
    asr = load_experiment(exp)
    assert asr.tokenizer.vocab_size == saved["vocab_size"]
    assert Path(asr.conf.data.token_list) == exp / "tokens/tokens.txt"
    assert Path(asr.conf.data.cmvn_stats) == exp / "cmvn.ark"


def test_an_experiment_from_before_the_restructuring_still_loads(make_feats_dir, tmp_path: Path, train_seed):
    """Issue 11 moved the SER head's weights (``pool.*`` -> ``head.pool.*``) and the sizes from buffers into
    config.yaml: an older experiment (an ``input_dim`` buffer, old names, no sizes in its config) loads,
    with the same outputs."""
    import torch

    from speechser.config import dump_config
    from speechser.tasks.ser import infer_ser, load_experiment, load_ser_config, train_ser
    from speechser.train.checkpoint import load_model_state, save_atomic

    d = make_feats_dir()
    exp = tmp_path / "exp"
    train_ser(load_ser_config(None, [
        "--data.train_dir", str(d), "--data.valid_dir", str(d), "--data.label_list", str(d / "emotions.txt"),
        "--data.max_frames", "300", "--model.conf.channels", "16", "--model.conf.embed_dim", "8",
        "--trainer.max_epochs", "1", "--trainer.keep_nbest", "1", "--trainer.average_nbest", "1",
        "--seed", str(train_seed)]), exp)
    want = infer_ser(exp, None, d, tmp_path / "new")
    old = tmp_path / "old"
    old.mkdir()
    state = load_model_state(exp / "valid.ua.ave_1best.pt")
    save_atomic({**{k.replace("head.", "", 1): v for k, v in state.items()}, "input_dim": torch.tensor(40)},
                old / "valid.ua.ave_1best.pt")
    conf = load_experiment(exp).conf
    conf.model.input_dim, conf.model.labels = 0, []
    dump_config(conf, old / "config.yaml")
    assert infer_ser(old, None, d, tmp_path / "old_decode") == want
    assert (tmp_path / "old_decode/posteriors.tsv").read_text() == (tmp_path / "new/posteriors.tsv").read_text()
