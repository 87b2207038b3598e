"""Per-module learning rates: the optimizer's parameter groups, chosen by parameter-name prefix.

``optim.groups`` maps a prefix of the model's parameter names to that group's settings, e.g.::

    optim:
      lr: 1.0e-4                # everything not named below
      groups:
        ssl.: {lr: 1.0e-5}      # the pretrained encoder ten times slower (paper 002: 1e-5 and 1e-4)

A trainable parameter joins the group of the longest prefix its name starts with, else the default group
(``optim.lr``, ``optim.weight_decay``), which is always group 0. A prefix that names no trainable parameter
is an error (a typo would otherwise train the module at the default rate), and so is an unknown setting.
The scheduler scales every group's rate by the same factor, so their ratios hold throughout training.
"""

from __future__ import annotations

import logging
from typing import Dict, List, Mapping, Tuple

from torch import nn

from speechser.config import ConfigValueError

#: The settings a group may set; the others are the optimizer's.
GROUP_KEYS = ("lr", "weight_decay")


def check_groups(groups: Mapping[str, Mapping[str, float]]) -> None:
    """Config-time checks of ``optim.groups``: known keys, rates and decays that are numbers >= 0."""
    for prefix, settings in groups.items():
        if not prefix:
            raise ConfigValueError("groups", "an empty prefix names every parameter: set optim.lr instead")
        if not isinstance(settings, Mapping) or not settings:
            raise ConfigValueError("groups", f"'{prefix}': give a mapping such as {{lr: 1.0e-5}}")
        for key, value in settings.items():
            if key not in GROUP_KEYS:
                raise ConfigValueError("groups", f"'{prefix}': unknown setting '{key}' ({', '.join(GROUP_KEYS)})")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ConfigValueError("groups", f"'{prefix}': {key} must be a number >= 0, got {value!r}")


def param_groups(model: nn.Module, groups: Mapping[str, Mapping[str, float]], lr: float, weight_decay: float
                 ) -> List[Dict[str, object]]:
    """The trainable parameters of ``model`` split into optimizer groups (default group first), each with its
    ``lr`` and ``weight_decay`` and a ``name`` (the prefix, or ``default``); logged."""
    prefixes = sorted(groups, key=len, reverse=True)
    members: Dict[str, List[Tuple[str, nn.Parameter]]] = {p: [] for p in ["default", *prefixes]}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        prefix = next((p for p in prefixes if name.startswith(p)), "default")
        members[prefix].append((name, param))
    empty = [p for p in prefixes if not members[p]]
    if empty:
        raise ConfigValueError("groups", f"'{empty[0]}' names no trainable parameter of the model (its names "
                               f"start with: {', '.join(sorted({n.split('.')[0] + '.' for n, _ in model.named_parameters()}))})")
    out: List[Dict[str, object]] = []
    for prefix, params in members.items():
        settings = {"lr": lr, "weight_decay": weight_decay, **dict(groups.get(prefix, {}))}
        if not params and prefix == "default":
            continue
        out.append({"params": [p for _, p in params], "name": prefix, **settings})
        logging.info("optimizer group %s: %d tensors, %.3f M parameters, lr %g, weight decay %g", prefix,
                     len(params), sum(p.numel() for _, p in params) / 1e6, settings["lr"], settings["weight_decay"])
    return out
