"""speechser-model-path: the weights file of a trained experiment that later stages use, for shell scripts.

Prints ``<exp-dir>/<name>`` when ``--name`` is given and exists; else the model the trainer wrote, chosen as
every tool chooses it (:func:`speechser.tasks.experiment_dir.resolve_checkpoint`): the averaged model
``valid.<metric>.ave_<n>best.pt`` (``<metric>`` from the experiment's ``config.yaml``; ``<n>`` is however
many epochs were averaged), else the best epoch, else the last checkpoint. A missing model is an error
that names it and lists the models the experiment has.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    from speechser.config import read_yaml
    from speechser.tasks.experiment_dir import experiment_models, resolve_checkpoint
    from speechser.train.checkpoint import CheckpointError

    p = argparse.ArgumentParser(prog="speechser-model-path", description=__doc__.split("\n\n")[0])
    p.add_argument("--exp-dir", required=True, help="a trained experiment (its config.yaml and *.pt)")
    p.add_argument("--name", default="", help="a weights file in it (default: its averaged, else best model)")
    a = p.parse_args(argv)
    exp = Path(a.exp_dir)
    try:
        if not (exp / "config.yaml").is_file():
            raise CheckpointError(f"{exp}: no config.yaml (not a trained experiment: has its training run?)")
        if a.name:
            path = exp / a.name
            if not path.is_file():
                raise CheckpointError(f"{path}: no such model")
        else:
            trainer = read_yaml(exp / "config.yaml").get("trainer", {})
            path = resolve_checkpoint(exp, None, SimpleNamespace(best_metric=trainer.get("best_metric", "")))
    except CheckpointError as err:
        print(f"speechser-model-path: error: {err}; {exp} has {experiment_models(exp)}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
