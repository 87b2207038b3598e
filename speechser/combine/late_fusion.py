"""Late fusion of SER systems: a weighted average of their posteriors, the weights chosen on the
validation set (issue 14), or fixed (a seed ensemble: equal weights).

For members ``m = 1..M`` with posteriors ``P_m`` ``(N, C)`` on the same utterances and labels, the fused
posterior is

    P = sum_m w_m P_m,    w_m >= 0,  sum_m w_m = 1,

and the hypothesis its argmax. With ``weights: valid`` every ``w`` on the simplex grid of step
``grid_step`` (``w_m = n_m * grid_step``; 21 points for two members at 0.05) is scored on the fold's
validation decodes (``<member>/decode_valid``) by ``metric`` (UA), and the best is applied to the test
decodes (``<member>/decode_test``). UA on one validation speaker (about 50 utterances on Emo-DB) ties
often, so ties go to the lower validation cross-entropy ``-mean log P(ref)``, then to the weights nearest
the uniform ones, then to the first in the grid's order (the most weight on the last member). The test set
is never looked at. The validation UA is optimistic for every member (each chose its checkpoint, or its
C, on the same speaker), so the weights lean towards the member that fits that speaker best.

A member is an experiment's fold directory, ``<exp_root>/<member>/<protocol>/fold<K>``. Each member must
have decoded the same utterances with the same label list (its ``posteriors.tsv`` header), with references
that agree, and its valid and test decodes must come from one checkpoint (their ``scores.json``) and be
complete (a ``hyp`` beside the posteriors: stage 6 removes it before decoding again); anything else is a
:class:`DataDirError` naming the directories.
"""

from __future__ import annotations

import itertools
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from speechser.config import ConfigValueError, check_choice, check_ranges, load_config
from speechser.combine.ensemble import read_members
from speechser.io.datadir import DataDirError, read_kv
from speechser.metrics.classification import confusion_matrix, scores_from_confusion
from speechser.metrics.decode_dir import write_ser_decode


@dataclass
class LateFusionConfig:
    """``conf/fuse_*.yaml``: which experiments to fuse and how their weights are found."""

    #: Experiment tags (``exp/<tag>``), each trained and decoded (stage 6 with ``--decode_valid true``).
    members: List[str] = field(default_factory=list)
    #: ``valid``: grid search on each fold's validation set; ``equal``: 1/M each (a seed ensemble);
    #: ``fixed``: the list ``fixed_weights``.
    weights: str = "valid"
    fixed_weights: List[float] = field(default_factory=list)
    grid_step: float = 0.05
    metric: str = "ua"

    def __post_init__(self) -> None:
        check_choice(self, weights=("valid", "equal", "fixed"), metric=("ua", "wa", "macro_f1"))
        check_ranges(self, grid_step="(0, 1]", fixed_weights="[0, inf)")
        if len(self.members) < 2:
            raise ConfigValueError("members", f"late fusion needs at least two experiments, got {self.members}")
        if len(set(self.members)) != len(self.members):
            raise ConfigValueError("members", f"an experiment is listed twice: {self.members}")
        if abs(round(1 / self.grid_step) * self.grid_step - 1) > 1e-9:
            raise ConfigValueError("grid_step", f"{self.grid_step} does not divide 1 (0.05, 0.1, 0.25 do)")
        if self.weights == "fixed" and (len(self.fixed_weights) != len(self.members) or sum(self.fixed_weights) <= 0):
            raise ConfigValueError("fixed_weights", f"weights: fixed needs one non-negative weight per member "
                                   f"({len(self.members)}), not all zero; got {self.fixed_weights}")


def load_fusion_config(path: Path | str, overrides: Sequence[str] = ()) -> LateFusionConfig:
    return load_config(LateFusionConfig, path, overrides)


def weight_grid(num_members: int, step: float) -> np.ndarray:
    """Every weight vector on the simplex with coordinates in multiples of ``step``: ``(G, M)``."""
    n = round(1 / step)
    rows = [c for c in itertools.product(range(n + 1), repeat=num_members - 1) if sum(c) <= n]
    return np.asarray([[*c, n - sum(c)] for c in rows], dtype=np.float64) / n


def _score(post: np.ndarray, refs: np.ndarray, metric: str) -> Tuple[float, float]:
    """(``metric`` of the argmax, cross-entropy of the references) of posteriors ``(N, C)``."""
    cm = confusion_matrix(refs.tolist(), post.argmax(1).tolist(), post.shape[1])
    xent = float(-np.log(np.clip(post[np.arange(len(refs)), refs], 1e-12, None)).mean())
    return scores_from_confusion(cm)[metric], xent


def choose_weights(posts: np.ndarray, refs: np.ndarray, step: float, metric: str = "ua"
                   ) -> Tuple[np.ndarray, float, List[Dict[str, Any]]]:
    """The grid point of :func:`weight_grid` that scores best on ``posts`` ``(M, N, C)`` against ``refs``
    ``(N,)``: highest ``metric``, then lowest cross-entropy, then nearest uniform. Returns (weights, its
    score, the whole grid's table)."""
    M = posts.shape[0]
    table, best, best_key = [], None, None
    for w in weight_grid(M, step):
        score, xent = _score(np.tensordot(w, posts, 1), refs, metric)
        key = (-round(score, 12), round(xent, 12), float(np.abs(w - 1 / M).sum()))
        table.append({"weights": [round(float(x), 6) for x in w], metric: score, "xent": xent})
        if best_key is None or key < best_key:
            best, best_key = w, key
    assert best is not None and best_key is not None
    return best, -best_key[0], table


def _check_same_checkpoint(member_dirs: Sequence[Path], valid_name: str, test_name: str) -> None:
    """A member's valid and test decodes must name the same checkpoint (a member decoded again on one set
    only would mix two models)."""
    from speechser.metrics.decode_dir import read_scores_json

    for d in member_dirs:
        v, t = (read_scores_json(d / n, required=False) or {} for n in (valid_name, test_name))
        if v.get("checkpoint") and t.get("checkpoint") and v["checkpoint"] != t["checkpoint"]:
            raise DataDirError(f"{d / valid_name} was decoded with {v['checkpoint']}, {d / test_name} with "
                               f"{t['checkpoint']}: decode both sets with one model (stage 6, --decode_valid true)")


def _references(decode_dir: Path, keys: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    ref = read_kv(decode_dir / "ref")
    missing = [k for k in keys if k not in ref]
    if missing:
        raise DataDirError(f"{decode_dir}/ref: no reference for utterance '{missing[0]}'")
    try:
        return np.asarray([list(labels).index(ref[k]) for k in keys])
    except ValueError:
        bad = next(ref[k] for k in keys if ref[k] not in labels)
        raise DataDirError(f"{decode_dir}/ref: label '{bad}' is not among the posteriors' {list(labels)}") from None


#: A finished decode has both (stage 6 removes ``hyp`` before decoding again).
DECODE_FILES = ("posteriors.tsv", "hyp")


def _read_set(member_dirs: Sequence[Path], name: str) -> Tuple[List[str], List[str], np.ndarray, np.ndarray]:
    """Every member's decode ``name``: (labels, keys, posteriors ``(M, N, C)``, references ``(N,)``); the
    members' references must agree."""
    labels, keys, posts = read_members([d / name for d in member_dirs])
    refs = _references(member_dirs[0] / name, keys, labels)
    for d in member_dirs[1:]:
        if not np.array_equal(_references(d / name, keys, labels), refs):
            raise DataDirError(f"{d / name}/ref and {member_dirs[0] / name}/ref: the references differ")
    return labels, keys, posts, refs


def fuse_fold(conf: LateFusionConfig, member_dirs: Sequence[Path | str], out_dir: Path | str,
              valid_name: str = "decode_valid", test_name: str = "decode_test") -> Dict[str, Any]:
    """Fuse one fold: choose (or take) the weights, write ``out_dir/decode_test`` (and ``decode_valid`` when
    the members have it) and ``out_dir/fusion.json``; returns what ``fusion.json`` holds."""
    if len(member_dirs) != len(conf.members):
        raise ValueError(f"{len(member_dirs)} member directories for {len(conf.members)} members")
    member_dirs, out_dir = [Path(d) for d in member_dirs], Path(out_dir)
    for d in member_dirs:
        for f in DECODE_FILES:
            if not (d / test_name / f).is_file():
                raise DataDirError(f"{d / test_name}/{f}: no such file (train and decode member "
                                   f"'{d}' first: stage 5 and 6 of its recipe)")
    lacking = [d / valid_name / f for d in member_dirs for f in DECODE_FILES if not (d / valid_name / f).is_file()]
    if lacking and conf.weights == "valid":
        raise DataDirError(f"{lacking[0]}: no such file; weights: valid needs every member's finished validation "
                           "decode (re-run its stage 6 with --decode_valid true)")
    sets = {test_name: _read_set(member_dirs, test_name)}
    if not lacking:
        _check_same_checkpoint(member_dirs, valid_name, test_name)
        sets[valid_name] = _read_set(member_dirs, valid_name)
        if sets[valid_name][0] != sets[test_name][0]:
            raise DataDirError(f"{member_dirs[0] / valid_name} and {member_dirs[0] / test_name}: different labels")
    labels = sets[test_name][0]
    info: Dict[str, Any] = {"members": [str(d) for d in member_dirs], "mode": conf.weights}
    if conf.weights == "valid":
        _, _, posts, refs = sets[valid_name]
        weights, score, table = choose_weights(posts, refs, conf.grid_step, conf.metric)
        info.update({f"valid_{conf.metric}": score, "grid_step": conf.grid_step, "grid": table,
                     f"member_valid_{conf.metric}": [_score(p, refs, conf.metric)[0] for p in posts]})
    elif conf.weights == "equal":
        weights = np.full(len(member_dirs), 1 / len(member_dirs))
    else:
        weights = np.asarray(conf.fixed_weights, dtype=np.float64) / sum(conf.fixed_weights)
    info["weights"] = [round(float(x), 6) for x in weights]
    extra = {"fusion": {"members": info["members"], "weights": info["weights"], "mode": conf.weights}}
    for name, (_, keys, posts, refs) in sets.items():
        write_ser_decode(out_dir / name, keys, np.tensordot(weights, posts, 1), refs.tolist(), list(labels), extra)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "fusion.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    logging.info("%s: weights %s (%s)", out_dir, info["weights"], conf.weights)
    return info
