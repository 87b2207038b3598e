"""speechser-final-settings: the training options of a final model on every speaker, from the choices the
cross-validation folds made on their validation sets (:mod:`speechser.tasks.final_model`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

from speechser.config import ConfigError


def main(argv: Optional[Sequence[str]] = None) -> int:
    from speechser.tasks.final_model import final_settings

    p = argparse.ArgumentParser(prog="speechser-final-settings", description=__doc__)
    p.add_argument("fold_dirs", nargs="+", help="the fold experiments (exp/<tag>/<protocol>/fold<K>)")
    p.add_argument("--out", required=True, help="a JSON file recording the choice and how it was made")
    a = p.parse_args(argv)
    try:
        s = final_settings(a.fold_dirs)
    except (ConfigError, OSError, ValueError, KeyError) as err:
        print(f"speechser-final-settings: error: {err}", file=sys.stderr)
        return 1
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"summary": s.summary, "overrides": s.overrides, **s.details,
                               "fold_dirs": [str(d) for d in a.fold_dirs]}, indent=1) + "\n", encoding="utf-8")
    print(f"speechser-final-settings: {s.summary}", file=sys.stderr)
    print("\n".join(s.overrides))
    return 0


if __name__ == "__main__":
    sys.exit(main())
