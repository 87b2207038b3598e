"""speechser-config-value: one top-level value of a YAML config, for recipe scripts (e.g. the protocol a
training config names); prints the default (or nothing) when the key is absent."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from speechser.config import ConfigError, read_yaml


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="speechser-config-value", description=__doc__)
    p.add_argument("config", help="a YAML config")
    p.add_argument("key", help="a top-level key, e.g. protocol")
    p.add_argument("default", nargs="?", default="", help="printed when the config has no such key")
    a = p.parse_args(argv)
    try:
        data = read_yaml(a.config)
    except (ConfigError, OSError) as err:
        print(f"speechser-config-value: error: {err}", file=sys.stderr)
        return 1
    value = data.get(a.key, a.default)
    if isinstance(value, (dict, list)):
        print(f"speechser-config-value: error: {a.config}: '{a.key}' is not a single value", file=sys.stderr)
        return 1
    print("" if value is None else value)
    return 0


if __name__ == "__main__":
    sys.exit(main())
