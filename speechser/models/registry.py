"""Model registry: a name in a config -> (model class, its config dataclass).

A new model is a new module that decorates its class with
:func:`register_model`; the trainer and the entry points never name models.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Tuple, Type

from torch import nn

from speechser.config import ConfigError, from_dict

_MODELS: Dict[str, Tuple[Type[nn.Module], type]] = {}


@dataclass
class ModelSection:
    """The ``model:`` section of a training config: a registered name and that model's own keys."""

    name: str = ""
    conf: Dict[str, Any] = field(default_factory=dict)


def register_model(name: str, config_cls: type) -> Callable[[Type[nn.Module]], Type[nn.Module]]:
    def wrap(cls: Type[nn.Module]) -> Type[nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model '{name}' registered twice")
        _MODELS[name] = (cls, config_cls)
        return cls

    return wrap


def _load_all() -> None:
    # Importing the modules runs their register_model decorators.
    from speechser.models import asr_transducer, bestrq, ser_fusion, ser_tdnn  # noqa: F401


def model_names() -> list[str]:
    _load_all()
    return sorted(_MODELS)


def resolve_model_config(name: str, conf: Mapping[str, Any], where: str = "model.conf") -> Any:
    """Check ``conf`` against the named model's config dataclass (unknown keys are errors)."""
    _load_all()
    if name not in _MODELS:
        raise ConfigError(f"unknown model name '{name}' (registered: {', '.join(sorted(_MODELS))})")
    return from_dict(_MODELS[name][1], conf, where)


def build_model(name: str, conf: Mapping[str, Any], **kwargs: Any) -> nn.Module:
    """Build a registered model; ``kwargs`` carry data-dependent sizes (input_dim, num_classes)."""
    cfg = resolve_model_config(name, conf)
    return _MODELS[name][0](cfg, **kwargs)


def model_config_dict(name: str, conf: Mapping[str, Any]) -> Dict[str, Any]:
    """The resolved (defaults filled in) model config as a plain dict."""
    return dataclasses.asdict(resolve_model_config(name, conf))
