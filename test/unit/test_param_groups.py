"""Per-module learning rates (optim.groups): which parameters join which group, the rates the optimizer and
its scheduler give each, and the errors for a prefix that names nothing or an unknown setting."""

import pytest
from torch import nn

from speechser.config import ConfigValueError, from_dict, load_yaml_text
from speechser.train.param_groups import param_groups
from speechser.train.scheduler import build_scheduler
from speechser.train.trainer import OptimConfig, build_optimizer


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ssl = nn.ModuleDict({"low": nn.Linear(2, 2), "top": nn.Linear(2, 2)})
        self.head = nn.Linear(2, 1)
        self.ssl["low"].weight.requires_grad_(False)


def test_each_parameter_joins_the_longest_prefix_and_the_default_group_comes_first():
    conf = from_dict(OptimConfig, load_yaml_text(
        "lr: 1.0e-3\nweight_decay: 0.01\ngroups:\n  ssl.: {lr: 1.0e-5}\n  ssl.top.: {lr: 1.0e-4, weight_decay: 0.0}\n"))
    groups = param_groups(Toy(), conf.groups, conf.lr, conf.weight_decay)
    got = {g["name"]: (len(g["params"]), g["lr"], g["weight_decay"]) for g in groups}
    assert groups[0]["name"] == "default"
    assert got == {"default": (2, 1e-3, 0.01), "ssl.top.": (2, 1e-4, 0.0), "ssl.": (1, 1e-5, 0.01)}  # frozen left out


def test_the_scheduler_keeps_the_groups_ratio():
    model = Toy()
    conf = OptimConfig(lr=1e-3, groups={"ssl.": {"lr": 1e-4}})
    opt = build_optimizer(conf, param_groups(model, conf.groups, conf.lr, conf.weight_decay))
    sched = build_scheduler("warmup_cosine", opt, total_steps=10, warmup_steps=3)
    for _ in range(5):
        opt.step()
        sched.step()
        rates = [g["lr"] for g in opt.param_groups]
        assert rates[0] > 0 and rates[1] == pytest.approx(rates[0] / 10)


def test_a_prefix_naming_nothing_and_unknown_settings_are_errors():
    with pytest.raises(ConfigValueError, match="'encoder.' names no trainable parameter.*head., ssl."):
        param_groups(Toy(), {"encoder.": {"lr": 1e-5}}, 1e-3, 0.0)
    with pytest.raises(ConfigValueError, match="unknown setting 'momentum'"):
        OptimConfig(groups={"ssl.": {"momentum": 0.9}})
    with pytest.raises(ConfigValueError, match="lr must be a number >= 0"):
        OptimConfig(groups={"ssl.": {"lr": -1.0}})
