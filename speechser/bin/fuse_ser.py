"""speechser-fuse-ser: late fusion of SER experiments, fold by fold: a weighted average of their posteriors,
the weights chosen on each fold's validation set (see :mod:`speechser.combine.late_fusion`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from speechser.config import ConfigError, dump_config
from speechser.io.datadir import DataDirError
from speechser.log import log_command_line, setup_logging


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="speechser-fuse-ser", description=__doc__)
    p.add_argument("--config", required=True, help="conf/fuse_*.yaml: members, weights, grid_step, metric")
    p.add_argument("--exp-root", default="exp", help="members are <exp-root>/<member>/<protocol>/fold<K>")
    p.add_argument("--protocol", required=True, help="loso, random10, ...")
    p.add_argument("--out-tag", required=True, help="writes <exp-root>/<out-tag>/<protocol>/fold<K>/decode_test")
    p.add_argument("--folds", nargs="+", required=True, help="fold numbers, e.g. 1 2 3")
    a, overrides = p.parse_known_args(argv)
    setup_logging()
    log_command_line()
    from speechser.combine.late_fusion import fuse_fold, load_fusion_config

    try:
        conf = load_fusion_config(a.config, overrides)
        out_root = Path(a.exp_root) / a.out_tag / a.protocol
        if a.out_tag in conf.members:
            raise ConfigError(f"{a.config}: the fusion's tag '{a.out_tag}' is one of its members")
        dump_config(conf, out_root / "config.yaml")
        for k in a.folds:
            fuse_fold(conf, [Path(a.exp_root) / m / a.protocol / f"fold{k}" for m in conf.members],
                      out_root / f"fold{k}")
    except (ConfigError, DataDirError, ValueError) as err:
        print(f"speechser-fuse-ser: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
