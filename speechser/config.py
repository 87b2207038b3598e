"""YAML configuration parsed into typed dataclasses.

* :func:`load_config` reads a YAML file, applies command-line overrides
  (``--optim.lr 1e-3``) and builds the dataclass tree; every value is checked
  against its annotation with typeguard.
* An unknown key is a :class:`ConfigError` that names the dotted key and the
  file; malformed YAML is one that names file, line and column.
* Value ranges are checked by the dataclasses themselves (``__post_init__`` calling
  :func:`check_ranges` / :func:`check_choice`), and keys every training config shares (``seed``,
  the ``scheduler`` section) by their dotted path (:data:`KEY_RANGES`, :data:`KEY_CHOICES`); an
  out-of-range value is a :class:`ConfigError` naming the dotted key (``model.conf.encoder.dropout``).
* :func:`dump_config` writes the resolved config (what an experiment really
  used) as YAML.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Type, TypeVar

import yaml
from typeguard import TypeCheckError, check_type

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration problem; the message names the key and, where known, the file."""


class ConfigValueError(ValueError):
    """A field of a config dataclass holds a value out of its range (raised by ``__post_init__``
    checks); :func:`from_dict` turns it into a :class:`ConfigError` naming the dotted key path."""

    def __init__(self, key: str, message: str) -> None:
        self.key, self.message = key, message
        super().__init__(f"'{key}': {message}")


_INTERVAL = re.compile(r"^\s*([\[(])\s*([^,]+?)\s*,\s*([^,]+?)\s*([\])])\s*$")


def check_ranges(obj: Any, **ranges: str) -> None:
    """Check fields of ``obj`` against intervals: ``check_ranges(self, dropout="[0, 1)", lr="(0, inf)")``.

    A field holding a list has each element checked. Raises :class:`ConfigValueError` naming the field.
    """
    for name, interval in ranges.items():
        m = _INTERVAL.match(interval)
        if m is None:
            raise ValueError(f"bad interval '{interval}' for '{name}'")
        lo_b, lo, hi, hi_b = m.group(1), float(m.group(2)), float(m.group(3)), m.group(4)
        value = getattr(obj, name)
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                continue  # a wrong type is typeguard's to report
            ok = (v >= lo if lo_b == "[" else v > lo) and (v <= hi if hi_b == "]" else v < hi)
            if not ok or v != v:
                raise ConfigValueError(name, f"{value!r} is out of range, must be in {interval}")


def check_choice(obj: Any, **choices: Sequence[str]) -> None:
    """Check string fields of ``obj`` against their allowed values; raises :class:`ConfigValueError`."""
    for name, allowed in choices.items():
        if getattr(obj, name) not in allowed:
            raise ConfigValueError(name, f"{getattr(obj, name)!r} is not one of {', '.join(map(str, allowed))}")


#: Ranges of keys by their dotted path, checked by :func:`from_dict` on top of the dataclasses' own checks
#: (for any config class that has the key): ``path -> (interval, what the bounds mean)``. The upper bounds
#: of the schedule are far beyond any recipe (the longest warm-up in ``egs/`` is 2 epochs or 10000 steps)
#: and catch a mistyped exponent, which would otherwise train at a learning rate of ~0 and exit 0.
KEY_RANGES: Dict[str, Tuple[str, str]] = {
    "seed": ("[0, 4294967295]", "the seed of numpy's and torch's generators must be an integer in [0, 2**32-1]"),
    "scheduler.warmup_steps": ("[0, 10000000]", "updates of linear warm-up; more than 10 million keeps the "
                               "learning rate near 0 for the whole run"),
    "scheduler.warmup_epochs": ("[0, 1000]", "epochs of linear warm-up; more than 1000 keeps the learning rate "
                                "near 0 for the whole run"),
    "scheduler.min_lr_ratio": ("[0, 1]", "the final learning rate as a fraction of optim.lr"),
}
#: Allowed values of string keys by their dotted path (see :data:`KEY_RANGES`).
KEY_CHOICES: Dict[str, Tuple[str, ...]] = {
    "scheduler.name": ("constant", "warmup_cosine", "noam"),
}


def check_key_ranges(obj: Any, where: str = "") -> None:
    """Check the fields of the config section ``obj`` at dotted path ``where`` (``""``: the top level)
    against :data:`KEY_RANGES` and :data:`KEY_CHOICES`, and a ``scheduler`` section's warm-up against its
    schedule (``noam`` needs one). Raises :class:`ConfigValueError` naming the field, the allowed values
    and what they mean."""
    if not dataclasses.is_dataclass(obj):
        return
    for f in dataclasses.fields(obj):
        path = f"{where}.{f.name}" if where else f.name
        if path in KEY_RANGES:
            interval, meaning = KEY_RANGES[path]
            try:
                check_ranges(obj, **{f.name: interval})
            except ConfigValueError as err:
                raise ConfigValueError(f.name, f"{err.message} ({meaning})") from None
        if path in KEY_CHOICES:
            check_choice(obj, **{f.name: KEY_CHOICES[path]})
    if where == "scheduler" and getattr(obj, "name", None) == "noam" \
            and not getattr(obj, "warmup_steps", 0) and not getattr(obj, "warmup_epochs", 0) \
            and not getattr(obj, "warmup_fraction", 0):
        raise ConfigValueError("warmup_steps", "the noam schedule peaks at the end of its warm-up and needs one: "
                               "set scheduler.warmup_steps or scheduler.warmup_epochs above 0 (or "
                               "scheduler.warmup_fraction, a share of the run)")


class _NoAliasLoader(yaml.SafeLoader):
    """YAML's safe loader (no tags that build Python objects) that also refuses aliases (``*name``): a
    config has no need of them, and a few hundred bytes of nested aliases expand to billions of nodes."""

    def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: ANN401
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            mark = event.start_mark
            raise ConfigError(f"{mark.name}:{mark.line + 1}:{mark.column + 1}: YAML alias '*{event.anchor}': "
                              "configs may not use anchors and aliases (write the value out instead)")
        return super().compose_node(parent, index)


def load_yaml_text(stream: Any) -> Any:  # noqa: ANN401
    """``yaml.safe_load`` that refuses aliases (:class:`_NoAliasLoader`)."""
    loader = _NoAliasLoader(stream)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_yaml(path: Path | str) -> Dict[str, Any]:
    """Read a YAML mapping; a syntax error names file, line and column; aliases are refused."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        with open(path, encoding="utf-8") as f:
            data = load_yaml_text(f)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"{path}{where}: malformed YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    return data


def parse_overrides(args: Sequence[str]) -> List[Tuple[str, Any]]:
    """``["--optim.lr", "1e-3", "--seed=3"]`` -> ``[("optim.lr", 0.001), ("seed", 3)]``.

    Values are parsed as YAML scalars/lists, so ``true``, ``3``, ``[1, 2]`` work.
    """
    out: List[Tuple[str, Any]] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise ConfigError(f"expected an option '--key value', got '{arg}'")
        key = arg[2:]
        if "=" in key:
            key, raw = key.split("=", 1)
            i += 1
        else:
            if i + 1 >= len(args):
                raise ConfigError(f"option '--{key}' has no value")
            raw = args[i + 1]
            i += 2
        key = key.replace("-", "_") if "." not in key else key
        try:
            value = load_yaml_text(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        out.append((key, value))
    return out


def apply_overrides(data: Dict[str, Any], overrides: Sequence[Tuple[str, Any]]) -> Dict[str, Any]:
    """Set dotted keys in a nested dict (creating mappings on the way)."""
    for dotted, value in overrides:
        node = data
        parts = dotted.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"cannot set '{dotted}': '{part}' is not a mapping")
            node = child
        node[parts[-1]] = value
    return data


def _coerce(value: Any, tp: Any) -> Any:
    """Coerce YAML scalars where the intent is unambiguous (int -> float, '1e-3' -> float)."""
    if tp is float:
        if isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                return value
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and value is not None:
            return _coerce(value, args[0])
    if origin in (list, List) and isinstance(value, list):
        (arg,) = typing.get_args(tp) or (Any,)
        return [_coerce(v, arg) for v in value]
    return value


def _field_default(f: "dataclasses.Field[Any]") -> Any:
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None if f.default is dataclasses.MISSING else f.default


def from_dict(cls: Type[T], data: Mapping[str, Any], where: str = "", source: str = "", base: Any = None) -> T:
    """Build dataclass ``cls`` from a mapping; unknown keys and wrong types are errors.

    Keys the mapping leaves out keep the values of ``base`` (an instance of
    ``cls``) if given, else the class defaults. A nested section starts from
    its field's default, so a model may give a shared section (say SpecAugment)
    its own defaults and a config may override just one key of it.
    """
    src = f" in {source}" if source else ""
    if not isinstance(data, Mapping):
        raise ConfigError(f"config section '{where or '<top>'}'{src} must be a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    kwargs: Dict[str, Any] = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in fields:
            raise ConfigError(
                f"unknown config key '{path}'{src} (known keys here: {', '.join(sorted(fields))})"
            )
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            default = getattr(base, key) if base is not None else _field_default(fields[key])
            value = from_dict(tp, value if value is not None else {}, path, source, default)  # type: ignore[arg-type]
        else:
            value = _coerce(value, tp)
            try:
                check_type(value, tp)
            except TypeCheckError as err:
                raise ConfigError(f"config key '{path}'{src}: {err}") from None
        kwargs[key] = value
    try:
        obj = dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)
        check_key_ranges(obj, where)
    except ConfigValueError as err:
        path = f"{where}.{err.key}" if where else err.key
        raise ConfigError(f"config key '{path}'{src}: {err.message}") from None
    except (TypeError, ValueError) as err:
        raise ConfigError(f"config section '{where or '<top>'}'{src}: {err}") from None
    return obj


def load_config(
    cls: Type[T],
    path: Optional[Path | str] = None,
    overrides: Sequence[str] = (),
) -> T:
    """Read ``path`` (optional), apply ``--key value`` overrides, build ``cls``."""
    data = read_yaml(path) if path is not None else {}
    pairs = parse_overrides(overrides)
    for key, _ in pairs:
        check_override_key(cls, key)
    data = apply_overrides(data, pairs)
    return from_dict(cls, data, source=str(path) if path is not None else "")


def check_override_key(cls: Type[Any], key: str) -> None:
    """A command-line key (``optim.lr``) must name a field at each dataclass level it walks through; past a
    free-form section (a ``dict``, such as ``model.conf``) the model's own config checks it later. An unknown
    key is a :class:`ConfigError` that says it came from the command line."""
    hints: Any = cls
    parts = key.split(".")
    for i, part in enumerate(parts):
        if not dataclasses.is_dataclass(hints):
            return
        fields = {f.name for f in dataclasses.fields(hints)}
        if part not in fields:
            where = ".".join(parts[:i])
            raise ConfigError(f"unknown config key '{key}' given on the command line (--{key}); known keys "
                              f"{'of ' + where + ' ' if where else ''}are: {', '.join(sorted(fields))}")
        hints = typing.get_type_hints(hints)[part]


def to_dict(obj: Any) -> Dict[str, Any]:
    return dataclasses.asdict(obj)


def dump_config(obj: Any, path: Path | str) -> None:
    """Write the resolved config as YAML (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        yaml.safe_dump(to_dict(obj), f, sort_keys=False, allow_unicode=True)
    tmp.replace(path)
