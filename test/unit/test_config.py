from dataclasses import dataclass, field
from pathlib import Path
from typing import List

import pytest

from speechser.config import ConfigError, dump_config, load_config, parse_overrides, read_yaml
from speechser.tasks.ser import SERTrainConfig, load_ser_config


@dataclass
class Inner:
    lr: float = 0.1
    layers: List[int] = field(default_factory=lambda: [1, 2])


@dataclass
class Outer:
    seed: int = 0
    name: str = "x"
    inner: Inner = field(default_factory=Inner)


def test_load_with_overrides_and_coercion(tmp_path: Path):
    p = tmp_path / "c.yaml"
    p.write_text("seed: 3\ninner:\n  lr: 1\n")
    conf = load_config(Outer, p, ["--inner.lr", "1e-3", "--name=abc", "--inner.layers", "[4, 5]"])
    assert conf.seed == 3 and conf.name == "abc"
    assert conf.inner.lr == pytest.approx(1e-3) and isinstance(conf.inner.lr, float)
    assert conf.inner.layers == [4, 5]


def test_unknown_key_names_key_and_file(tmp_path: Path):
    p = tmp_path / "c.yaml"
    p.write_text("seed: 1\ninner:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'inner.lrr' in .*c.yaml"):
        load_config(Outer, p)
    with pytest.raises(ConfigError, match=r"unknown config key 'bogus'"):
        load_config(Outer, None, ["--bogus", "1"])


def test_wrong_type_is_error(tmp_path: Path):
    p = tmp_path / "c.yaml"
    p.write_text("seed: five\n")
    with pytest.raises(ConfigError, match=r"config key 'seed'"):
        load_config(Outer, p)


def test_malformed_yaml_names_line(tmp_path: Path):
    p = tmp_path / "bad.yaml"
    p.write_text("seed: 1\ninner:\n  lr: [0.1\nname: x\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+:\d+: malformed YAML"):
        read_yaml(p)


def test_model_conf_keys_are_checked(tmp_path: Path):
    p = tmp_path / "c.yaml"
    p.write_text("data: {train_dir: a, valid_dir: b, label_list: c}\n"
                 "model:\n  name: tdnn_ser\n  conf:\n    channels: 8\n    chanels: 9\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'model.conf.chanels'"):
        load_ser_config(p)
    p.write_text("data: {train_dir: a, valid_dir: b, label_list: c}\nmodel: {name: nope}\n")
    with pytest.raises(ConfigError, match=r"unknown model name 'nope'"):
        load_ser_config(p)


def test_resolved_config_roundtrip(tmp_path: Path):
    conf = load_ser_config(None, ["--data.train_dir", "a", "--data.valid_dir", "b", "--data.label_list", "c",
                                  "--model.conf.channels", "16"])
    assert conf.model.conf["channels"] == 16 and "dilations" in conf.model.conf  # defaults filled in
    dump_config(conf, tmp_path / "config.yaml")
    again = load_config(SERTrainConfig, tmp_path / "config.yaml")
    assert again == conf


def test_parse_overrides_errors():
    with pytest.raises(ConfigError, match="has no value"):
        parse_overrides(["--a"])
    with pytest.raises(ConfigError, match="expected an option"):
        parse_overrides(["a", "1"])


def test_partial_nested_section_keeps_the_models_own_defaults():
    from speechser.models.registry import model_config_dict

    conf = model_config_dict("tdnn_ser", {"specaug": {"num_freq_masks": 3}})
    assert conf["specaug"]["num_freq_masks"] == 3
    assert conf["specaug"]["freq_width"] == 20 and conf["specaug"]["time_width_ratio"] == 0.1  # tdnn_ser's
    asr = model_config_dict("conformer_transducer", {"specaug": {"freq_width": 10}})
    assert asr["specaug"]["num_time_masks"] == 10 and asr["specaug"]["adaptive_num_time_masks"] is True


def test_a_typo_on_the_command_line_is_named_as_such_and_leaves_no_experiment(tmp_path, capsys):
    from speechser.bin.train_ser import main

    yaml_file = tmp_path / "train.yaml"
    yaml_file.write_text("optim:\n  lr: 0.001\n")
    exp = tmp_path / "exp/x"
    assert main(["--config", str(yaml_file), "--exp-dir", str(exp), "--optim.lrr", "1"]) == 1
    err = capsys.readouterr().err
    assert "unknown config key 'optim.lrr' given on the command line (--optim.lrr)" in err
    assert "lr" in err and str(yaml_file) not in err  # the file is not blamed for it
    assert not (tmp_path / "exp").exists()
    # a key under a free-form section (the model's own conf) is left to the model's config to check
    from speechser.config import check_override_key
    from speechser.tasks.ser import SERTrainConfig

    check_override_key(SERTrainConfig, "model.conf.anything")
