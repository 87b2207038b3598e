"""SER training and inference from a config: data, model, trainer wired together."""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from speechser.config import ConfigError, from_dict, load_config, read_yaml
from speechser.data.dataset import FeatsLabelDataset, collate_feats_labels
from speechser.data.labels import read_label_list
from speechser.data.loader import FeatsDataConfig, bucketed_loader
from speechser.losses.classification import class_weights_from_counts
from speechser.models.registry import ModelSection, build_model, model_config_dict
from speechser.train.checkpoint import load_model_state
from speechser.train.distributed import DistInfo
from speechser.train.trainer import (
    OptimConfig,
    SchedulerConfig,
    Trainer,
    TrainerConfig,
    resolve_device,
    start_experiment,
)


@dataclass
class SERDataConfig(FeatsDataConfig):
    #: Label list, one class per line in index order.
    label_list: str = ""
    label_file: str = "utt2emo"
    cmvn_type: str = "speaker"
    max_frames: int = 6000
    max_batch_size: int = 32
    crop_frames: int = 0
    #: Weight classes by inverse frequency in the training set (power 0 = unweighted).
    class_weight_power: float = 0.0


@dataclass
class SERTrainConfig:
    seed: int = 0
    data: SERDataConfig = field(default_factory=SERDataConfig)
    model: ModelSection = field(default_factory=lambda: ModelSection(name="tdnn_ser"))
    optim: OptimConfig = field(default_factory=OptimConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


def load_ser_config(path: Optional[Path | str], overrides: Sequence[str] = ()) -> SERTrainConfig:
    """Load and fully resolve a config: the model's own keys are checked and defaults filled in."""
    conf = load_config(SERTrainConfig, path, overrides)
    conf.model.conf = model_config_dict(conf.model.name, conf.model.conf)
    for name in ("train_dir", "valid_dir", "label_list"):
        if not getattr(conf.data, name):
            raise ConfigError(f"config key 'data.{name}' is required")
    return conf


def _dataset(conf: SERDataConfig, data_dir: str, labels: List[str], train: bool) -> FeatsLabelDataset:
    return FeatsLabelDataset(data_dir, labels, conf.label_file, conf.cmvn_for(data_dir),
                             conf.crop_frames if train else 0)


def _loader(ds: FeatsLabelDataset, conf: SERDataConfig, shuffle: bool, seed: int, dist: DistInfo) -> tuple:
    return bucketed_loader(ds, ds.lengths, collate_feats_labels, conf.max_frames, conf.max_batch_size, shuffle,
                           seed, dist, conf.num_workers)


def train_ser(conf: SERTrainConfig, exp_dir: Path | str, stop_after_epoch: Optional[int] = None) -> Dict[str, Any]:
    """Train an SER model as ``conf`` says into ``exp_dir`` (resuming when it holds a checkpoint)."""
    exp_dir = Path(exp_dir)
    dist = start_experiment(conf, exp_dir)
    labels = read_label_list(conf.data.label_list)
    train_ds = _dataset(conf.data, conf.data.train_dir, labels, train=True)
    valid_ds = _dataset(conf.data, conf.data.valid_dir, labels, train=False)
    input_dim = int(np.asarray(train_ds[0]["feats"]).shape[1])
    weights = None
    if conf.data.class_weight_power > 0:
        counts = Counter(train_ds.utt2label.values())
        weights = class_weights_from_counts([counts.get(i, 0) for i in range(len(labels))],
                                            conf.data.class_weight_power).tolist()
    model = build_model(conf.model.name, conf.model.conf, input_dim=input_dim, num_classes=len(labels),
                        class_weights=weights)
    train_loader, train_sampler = _loader(train_ds, conf.data, True, conf.seed, dist)
    valid_loader, _ = _loader(valid_ds, conf.data, False, conf.seed, dist)
    trainer = Trainer(model, exp_dir, conf.trainer, conf.optim, conf.scheduler, dist)
    return trainer.run(train_loader, valid_loader, len(train_sampler), train_sampler.set_epoch, stop_after_epoch)


def load_trained_ser(exp_dir: Path | str, checkpoint: Path | str, device: str = "auto") -> tuple:
    """Rebuild a model from ``exp_dir/config.yaml`` and load ``checkpoint``; returns ``(model, conf, labels)``."""
    exp_dir = Path(exp_dir)
    conf = from_dict(SERTrainConfig, read_yaml(exp_dir / "config.yaml"), source=str(exp_dir / "config.yaml"))
    labels = read_label_list(conf.data.label_list)
    state = load_model_state(checkpoint)
    input_dim = _input_dim_from_state(state)
    model = build_model(conf.model.name, conf.model.conf, input_dim=input_dim, num_classes=len(labels))
    model.load_state_dict(state)
    model.to(resolve_device(device)).eval()
    return model, conf, labels


def _input_dim_from_state(state: Dict[str, torch.Tensor]) -> int:
    if "input_dim" in state:
        return int(state["input_dim"])
    raise ValueError("the checkpoint does not record the model's input dimension")


@torch.no_grad()
def infer_ser(
    exp_dir: Path | str,
    checkpoint: Path | str,
    data_dir: Path | str,
    out_dir: Path | str,
    device: str = "auto",
) -> Dict[str, float]:
    """Write ``posteriors.tsv`` (utt, then one column per label), ``hyp`` and ``ref``
    (``utt label`` lines) for ``data_dir`` into ``out_dir``; returns the scores."""
    from speechser.metrics.classification import confusion_matrix, scores_from_confusion

    model, conf, labels = load_trained_ser(exp_dir, checkpoint, device)
    ds = _dataset(conf.data, str(data_dir), labels, train=False)
    loader, _ = _loader(ds, conf.data, False, conf.seed, DistInfo())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dev = next(model.parameters()).device
    rows: Dict[str, np.ndarray] = {}
    refs: Dict[str, int] = {}
    for batch in tqdm(loader, desc="infer", disable=None, leave=False):
        batch = batch.to(dev)
        post = model.posteriors(batch.feats, batch.lengths)
        for key, p, ref in zip(batch.keys, post, batch.labels.tolist()):
            rows[key] = p
            refs[key] = ref
    keys = sorted(rows)
    with open(out_dir / "posteriors.tsv", "w", encoding="utf-8") as f:
        f.write("utt\t" + "\t".join(labels) + "\n")
        for k in keys:
            f.write(k + "\t" + "\t".join(f"{x:.6f}" for x in rows[k]) + "\n")
    hyps = {k: int(np.argmax(rows[k])) for k in keys}
    with open(out_dir / "hyp", "w", encoding="utf-8") as f:
        f.writelines(f"{k} {labels[hyps[k]]}\n" for k in keys)
    with open(out_dir / "ref", "w", encoding="utf-8") as f:
        f.writelines(f"{k} {labels[refs[k]]}\n" for k in keys)
    cm = confusion_matrix([refs[k] for k in keys], [hyps[k] for k in keys], len(labels))
    scores = scores_from_confusion(cm)
    with open(out_dir / "scores.json", "w") as f:
        json.dump({**scores, "n": len(keys), "checkpoint": str(checkpoint)}, f, indent=1)
    logging.info("%s: %d utterances, UA %.2f%% WA %.2f%%", data_dir, len(keys), 100 * scores["ua"], 100 * scores["wa"])
    return scores
