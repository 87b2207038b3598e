"""speechser-config-value: one value of a YAML config, for recipe scripts (e.g. the protocol a training
config names, ``protocol``, or its majority classes, ``data.soft_labels.majority``): a dotted key reads into
nested sections, a list prints comma-separated; prints the default (or nothing) when the key is absent."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from speechser.config import ConfigError, read_yaml


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="speechser-config-value", description=__doc__)
    p.add_argument("config", help="a YAML config")
    p.add_argument("key", help="a key, e.g. protocol or data.soft_labels.majority")
    p.add_argument("default", nargs="?", default="", help="printed when the config has no such key")
    a = p.parse_args(argv)
    try:
        data = read_yaml(a.config)
    except (ConfigError, OSError) as err:
        print(f"speechser-config-value: error: {err}", file=sys.stderr)
        return 1
    value = data
    for part in a.key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            value = a.default
            break
    if isinstance(value, dict) or (isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value)):
        print(f"speechser-config-value: error: {a.config}: '{a.key}' is not a value or a list of values",
              file=sys.stderr)
        return 1
    print(",".join(str(v) for v in value) if isinstance(value, list) else value)
    return 0


if __name__ == "__main__":
    sys.exit(main())
