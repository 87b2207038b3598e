"""The settings of a final model trained on every speaker, taken from what cross-validation chose.

Cross-validation estimates accuracy with one model per fold; a user deploys one model. The recipe's final
stage trains it on all the data with the choices the folds made on their own validation sets (never on a
test set), and this module reads those choices from the fold experiments:

- a closed-form model (``linear_ser``): the regularization ``C`` and the hidden-state blocks each fold chose
  (``linear_fit.json``); the final model fits the setting most folds chose (ties: the higher mean validation
  UA of the folds that chose it, then the smaller ``C``) with its grid reduced to that one setting;
- a model trained by epochs: each fold's best epoch by its validation metric (``train_stats.tsv``, the
  config's ``trainer.best_metric``); the final model trains for the median of those epochs and keeps and
  averages its last epochs (``trainer.best_metric: epoch``), as many as the folds averaged.

The validation set of the final training is the training set itself (the trainer needs one): it decides
nothing, because every choice was made before.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

from speechser.config import ConfigError, read_yaml


@dataclass
class FinalSettings:
    """``overrides``: the ``--key value`` words for the final training; ``summary``: what was chosen, and how."""

    overrides: List[str]
    summary: str
    details: Dict[str, Any] = field(default_factory=dict)


def _linear_choice(fold_dirs: Sequence[Path]) -> FinalSettings:
    fits = []
    for d in fold_dirs:
        path = d / "linear_fit.json"
        if not path.is_file():
            raise ConfigError(f"{path}: no such file (the fold's fit records the C and blocks it chose)")
        fit = json.loads(path.read_text(encoding="utf-8"))
        fits.append((float(fit["C"]), tuple(int(b) for b in fit["blocks"]), float(fit.get("valid_ua", 0.0))))
    votes = Counter((c, blocks) for c, blocks, _ in fits)

    def rank(choice: Tuple[float, Tuple[int, ...]]) -> Tuple[int, float, float]:
        uas = [ua for c, b, ua in fits if (c, b) == choice]
        return votes[choice], statistics.fmean(uas), -choice[0]

    c, blocks = max(votes, key=rank)
    summary = (f"C {c:g} and hidden-state blocks {list(blocks)}, chosen by {votes[(c, blocks)]} of {len(fits)} folds "
               "on their validation sets")
    return FinalSettings(["--model.conf.Cs", f"[{c!r}]", "--model.conf.block_sets", f"[{list(blocks)}]"], summary,
                         {"C": c, "blocks": list(blocks), "votes": votes[(c, blocks)], "folds": len(fits)})


def _best_epoch(fold_dir: Path, metric: str, mode: str) -> int:
    stats = fold_dir / "train_stats.tsv"
    if not stats.is_file():
        raise ConfigError(f"{stats}: no such file (the fold's training records its epochs there)")
    rows = [ln.split("\t") for ln in stats.read_text(encoding="utf-8").splitlines() if ln.strip()]
    col = f"valid_{metric}"
    if not rows or col not in rows[0]:
        raise ConfigError(f"{stats}: no column {col} (the config's trainer.best_metric)")
    i, e = rows[0].index(col), rows[0].index("epoch")
    scored = [(float(r[i]), int(r[e])) for r in rows[1:] if len(r) > i and r[i]]
    best = max(scored, key=lambda s: (s[0] if mode == "max" else -s[0], -s[1]))
    return best[1]


def final_settings(fold_dirs: Sequence[Path | str]) -> FinalSettings:
    """The final model's settings from the fold experiments ``fold_dirs`` (see the module docstring)."""
    dirs = [Path(d) for d in fold_dirs]
    if not dirs:
        raise ConfigError("no fold experiments to take the final model's settings from")
    conf = read_yaml(dirs[0] / "config.yaml")
    if conf.get("model", {}).get("name") == "linear_ser":
        return _linear_choice(dirs)
    trainer = conf.get("trainer", {})
    metric, mode = str(trainer.get("best_metric", "ua")), str(trainer.get("best_mode", "max"))
    epochs = [_best_epoch(d, metric, mode) for d in dirs]
    n = max(1, int(statistics.median_high(epochs)))
    keep = min(int(trainer.get("keep_nbest", 5)), n)
    average = min(int(trainer.get("average_nbest", 5)), keep)
    summary = (f"{n} epochs, the median of the folds' best epochs by validation {metric} ({', '.join(map(str, epochs))}); "
               f"the last {average} averaged")
    return FinalSettings(["--trainer.max_epochs", str(n), "--trainer.best_metric", "epoch", "--trainer.best_mode", "max",
                          "--trainer.patience", "0", "--trainer.keep_nbest", str(keep), "--trainer.average_nbest",
                          str(average)], summary, {"epochs": n, "fold_best_epochs": epochs, "averaged": average})
