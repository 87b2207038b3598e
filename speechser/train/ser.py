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

from speechser.config import ConfigError, check_ranges, from_dict, load_config, read_yaml
from speechser.data.augment import WaveformAugmentor
from speechser.data.dataset import FeatsLabelDataset, collate_feats_labels
from speechser.data.labels import read_label_list
from speechser.data.loader import FeatsDataConfig, bucketed_loader
from speechser.losses.classification import class_weights_from_counts
from speechser.models.registry import ModelSection, build_model, model_config_dict
from speechser.train.checkpoint import load_model_state
from speechser.train.distributed import DistInfo
from speechser.train.experiment import Experiment
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
    #: Also load each utterance's 16 kHz waveform (``wav.scp``) into the batch, for models that read audio.
    load_audio: bool = False

    def __post_init__(self) -> None:
        check_ranges(self, max_frames="[1, inf)", max_batch_size="[1, inf)", num_workers="[0, inf)",
                     crop_frames="[0, inf)", class_weight_power="[0, inf)")


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


def _dataset(conf: SERDataConfig, data_dir: str, labels: List[str], train: bool,
             augment: Optional[WaveformAugmentor] = None) -> FeatsLabelDataset:
    """``augment`` only for the training set (validation, inference and k-NN data are never augmented)."""
    return FeatsLabelDataset(data_dir, labels, conf.label_file, conf.cmvn_for(data_dir),
                             conf.crop_frames if train else 0, load_audio=conf.load_audio,
                             augment=augment if train else None)


def _loader(ds: FeatsLabelDataset, conf: SERDataConfig, shuffle: bool, seed: int, dist: DistInfo) -> tuple:
    return bucketed_loader(ds, ds.lengths, collate_feats_labels, conf.max_frames, conf.max_batch_size, shuffle,
                           seed, dist, conf.num_workers)


def train_ser(conf: SERTrainConfig, exp_dir: Path | str, stop_after_epoch: Optional[int] = None) -> Dict[str, Any]:
    """Train an SER model as ``conf`` says into ``exp_dir`` (resuming when it holds a checkpoint)."""
    exp_dir = Path(exp_dir)
    with start_experiment(conf, exp_dir) as exp:
        return _train_ser(conf, exp, stop_after_epoch)


def _train_ser(conf: SERTrainConfig, exp: Experiment, stop_after_epoch: Optional[int]) -> Dict[str, Any]:
    exp_dir, dist = exp.dir, exp.dist
    labels = read_label_list(conf.data.label_list)
    augment = WaveformAugmentor(conf.data.augment, seed=conf.seed) if conf.data.augment.enabled else None
    train_ds = _dataset(conf.data, conf.data.train_dir, labels, train=True, augment=augment)
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
    trainer = Trainer(model, exp_dir, conf.trainer, conf.optim, conf.scheduler, dist, exp)

    def set_epoch(epoch: int) -> None:  # the batch order and the augmentation draws
        train_sampler.set_epoch(epoch)
        train_ds.set_epoch(epoch)

    return trainer.run(train_loader, valid_loader, len(train_sampler), set_epoch, stop_after_epoch)


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


@dataclass
class SEROutputs:
    """Per-utterance outputs of an SER model, rows in ``keys`` order:
    ``emb (N, E)`` utterance embeddings, ``post (N, C)`` posteriors, ``labels (N,)`` references."""

    keys: List[str]
    emb: torch.Tensor
    post: torch.Tensor
    labels: List[int]


@torch.no_grad()
def collect_ser_outputs(model: torch.nn.Module, conf: SERTrainConfig, labels: List[str],
                        data_dir: Path | str) -> SEROutputs:
    """Embeddings and posteriors of every utterance of ``data_dir`` (model in eval mode), sorted by key."""
    ds = _dataset(conf.data, str(data_dir), labels, train=False)
    loader, _ = _loader(ds, conf.data, False, conf.seed, DistInfo())
    dev = next(model.parameters()).device
    rows: Dict[str, tuple] = {}
    for batch in tqdm(loader, desc=f"embed {Path(data_dir).name}", disable=None, leave=False):
        batch = batch.to(dev)
        emb = model.embed_batch(batch)
        post = torch.softmax(model.classify(emb).float(), dim=-1)
        for key, e, p, ref in zip(batch.keys, emb.float().cpu(), post.cpu(), batch.labels.tolist()):
            rows[key] = (e, p, ref)
    keys = sorted(rows)
    return SEROutputs(keys, torch.stack([rows[k][0] for k in keys]), torch.stack([rows[k][1] for k in keys]),
                      [rows[k][2] for k in keys])


def write_ser_decode(out_dir: Path | str, keys: Sequence[str], post: torch.Tensor | np.ndarray,
                     refs: Sequence[int], labels: List[str], extra: Optional[Dict[str, Any]] = None,
                     hyps: Optional[Sequence[int]] = None) -> Dict[str, float]:
    """Write ``posteriors.tsv`` (utt, then one column per label), ``hyp``, ``ref`` (``utt label``
    lines) and ``scores.json`` into ``out_dir``; returns the scores. The hypotheses are the
    posteriors' argmax unless ``hyps`` gives them."""
    from speechser.metrics.classification import confusion_matrix, scores_from_confusion

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    post = np.asarray(post, dtype=np.float64)
    with open(out_dir / "posteriors.tsv", "w", encoding="utf-8") as f:
        f.write("utt\t" + "\t".join(labels) + "\n")
        for k, row in zip(keys, post):
            f.write(k + "\t" + "\t".join(f"{x:.6f}" for x in row) + "\n")
    hyps = post.argmax(1).tolist() if hyps is None else list(hyps)
    with open(out_dir / "hyp", "w", encoding="utf-8") as f:
        f.writelines(f"{k} {labels[h]}\n" for k, h in zip(keys, hyps))
    with open(out_dir / "ref", "w", encoding="utf-8") as f:
        f.writelines(f"{k} {labels[r]}\n" for k, r in zip(keys, refs))
    scores = scores_from_confusion(confusion_matrix(list(refs), hyps, len(labels)))
    with open(out_dir / "scores.json", "w") as f:
        json.dump({**scores, "n": len(keys), **(extra or {})}, f, indent=1)
    logging.info("%s: %d utterances, UA %.2f%% WA %.2f%%", out_dir, len(keys), 100 * scores["ua"], 100 * scores["wa"])
    return scores


def infer_ser(
    exp_dir: Path | str,
    checkpoint: Path | str,
    data_dir: Path | str,
    out_dir: Path | str,
    device: str = "auto",
) -> Dict[str, float]:
    """Write ``posteriors.tsv``, ``hyp``, ``ref`` and ``scores.json`` for ``data_dir`` into ``out_dir``
    (see :func:`write_ser_decode`); returns the scores."""
    model, conf, labels = load_trained_ser(exp_dir, checkpoint, device)
    out = collect_ser_outputs(model, conf, labels, data_dir)
    return write_ser_decode(out_dir, out.keys, out.post, out.labels, labels, {"checkpoint": str(checkpoint)})
