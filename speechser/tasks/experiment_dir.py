"""What every task does the same way: resolve a config's data-dependent sizes, copy into the
experiment what inference will need, wire datasets, loaders, model and trainer, and load a trained
model back from an experiment directory alone.

An experiment directory is self-contained: its ``config.yaml`` holds the model's registry name, its
resolved config and its sizes (``model.input_dim``, and per task the vocabulary size or the label
list); the files the data options name and inference needs (global CMVN statistics, token lists) are
copied into it when training starts, and what packing needs of the training data is recorded there
(:func:`record_inference_inputs`): packing reads the experiment directory and nothing of the recipe's
``data/`` or ``dump/``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Dict, Optional, Sequence, Type, TypeVar

import kaldiio
import numpy as np
import torch
from torch import nn

from speechser.config import ConfigError, from_dict, read_yaml
from speechser.data.loader import bucketed_loader
from speechser.features.extract import compute_cmvn_stats, stats_bytes
from speechser.features.fbank import accumulate_cmvn
from speechser.features.front_end import FrontEnd, FrontEndError, front_end_of
from speechser.io.datadir import DataDirError, read_kv
from speechser.models.registry import build_model
from speechser.train.checkpoint import CheckpointError, load_model_state
from speechser.train.distributed import plan_global_batch
from speechser.train.experiment import Experiment
from speechser.train.trainer import Trainer, resolve_device

T = TypeVar("T")

#: Where an experiment keeps its copy of the global CMVN statistics (``data.cmvn_type: global``).
CMVN_FILE = "cmvn.ark"
#: Weight names of SER checkpoints written before the shared head (issue 11) -> their names now.
LEGACY_SER_HEAD = ("pool.", "embed.", "classifier.")


def feature_dim(data_dir: Path | str) -> int:
    """The feature dimension ``D`` of a data directory: the columns of the first matrix of ``feats.scp``."""
    scp = Path(data_dir) / "feats.scp"
    entries = read_kv(scp)
    if not entries:
        raise DataDirError(f"{scp}: empty (no features to size the model's input)")
    key, spec = next(iter(entries.items()))
    try:
        mat = np.asarray(kaldiio.load_mat(spec))
    except Exception as err:  # a corrupt or missing archive: name it
        raise DataDirError(f"{scp}: the features of '{key}' ({spec}) cannot be read: {err}") from None
    if mat.ndim != 2:
        raise DataDirError(f"{scp}: the features of '{key}' are not a (frames, dim) matrix")
    return int(mat.shape[1])


def check_input_dim(expected: int, feats: Any, data_dir: str) -> None:
    """The first training item's features ``(T, D)`` must have the dimension the config records."""
    got = int(np.asarray(feats).shape[1])
    if got != expected:
        raise ConfigError(f"{data_dir}: features of dimension {got}, but model.input_dim is {expected} "
                          "(a config from another feature set?)")


def copy_into_experiment(src: Path | str, exp: Experiment, name: str) -> Path:
    """Copy ``src`` to ``exp.dir/name`` (rank 0; through a temporary file, so a crash never leaves half a
    file); returns the destination."""
    dst = exp.dir / name
    if exp.dist.is_main:
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(dst.name + ".tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    return dst


#: The experiment's record of its training data for inference and packing (:func:`record_inference_inputs`).
INFERENCE_DIR = "inference"
#: In :data:`INFERENCE_DIR`: the training set's front-end (:class:`FrontEnd`); with ``data.cmvn_type:
#: speaker``, the training set's pooled statistics (a speaker too short for its own uses them); with
#: utterance vectors (``data.vector_dir``), their front-end and the training utterances' pooled statistics.
FRONT_END_RECORD = "frontend.json"
POOLED_CMVN_RECORD = "cmvn_pooled.ark"
VECTOR_FRONT_END_RECORD = "vectors.frontend.json"
VECTOR_CMVN_RECORD = "vectors.cmvn_pooled.ark"


def _write_record(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _record_front_end(data_dir: Path, path: Path) -> None:
    """``data_dir``'s front-end into ``path``; features without recorded settings (made by hand) are
    trained on all the same, with a warning that the experiment cannot be packed."""
    try:
        front_end = front_end_of(data_dir)
    except (DataDirError, FrontEndError) as err:
        logging.warning("%s: not recorded, so this experiment cannot be packed: %s", path, err)
        path.unlink(missing_ok=True)
        return
    _write_record(path, (json.dumps(front_end.to_json(), indent=1) + "\n").encode())


def record_inference_inputs(data_conf: Any, exp_dir: Path, is_main: bool = True) -> None:
    """Record in ``exp_dir/inference/`` what inference needs of the training data (see
    :data:`FRONT_END_RECORD`): written by rank 0 when training starts (again on a resume), read by packing.
    ``data_conf``: the ``data`` section (``train_dir``, ``cmvn_type``, and for SER ``vector_dir``)."""
    if not is_main:
        return
    out = Path(exp_dir) / INFERENCE_DIR
    out.mkdir(parents=True, exist_ok=True)
    train_dir = Path(data_conf.train_dir)
    _record_front_end(train_dir, out / FRONT_END_RECORD)
    if data_conf.cmvn_type == "speaker":
        pooled = compute_cmvn_stats(train_dir, per_speaker=False)["global"]
        _write_record(out / POOLED_CMVN_RECORD, stats_bytes(pooled))
    vector_dir = getattr(data_conf, "vector_dir", "")
    if vector_dir:
        _record_front_end(Path(vector_dir), out / VECTOR_FRONT_END_RECORD)
        vectors = kaldiio.load_scp(str(Path(vector_dir) / "feats.scp"))
        train = [k for k in read_kv(train_dir / "utt2spk") if k in vectors]
        if train:  # none: packing refuses the experiment, naming the sets
            _write_record(out / VECTOR_CMVN_RECORD, stats_bytes(accumulate_cmvn(vectors[k] for k in train)))
    logging.info("%s: recorded the training set's front-end%s for inference", out,
                 " and pooled statistics" if data_conf.cmvn_type == "speaker" or vector_dir else "")


def record_inference_inputs_from_config(exp_dir: Path | str) -> None:
    """:func:`record_inference_inputs` for an experiment trained before experiments recorded them, from the
    data section of its ``config.yaml`` (its paths relative to the recipe directory, where this must run)."""
    data = read_yaml(Path(exp_dir) / "config.yaml").get("data") or {}
    if not data.get("train_dir"):
        raise ConfigError(f"{exp_dir}/config.yaml: no data.train_dir to record the inference inputs from")
    record_inference_inputs(SimpleNamespace(train_dir=data["train_dir"], cmvn_type=data.get("cmvn_type", "none"),
                                            vector_dir=data.get("vector_dir", "")), Path(exp_dir))


def recorded(exp_dir: Path | str, name: str) -> Path:
    """``exp_dir/inference/<name>``, which must exist: else an :class:`ExperimentRecordMissing` saying how
    to record it."""
    path = Path(exp_dir) / INFERENCE_DIR / name
    if not path.is_file():
        raise ExperimentRecordMissing(
            f"{path}: no such file: the experiment does not record its training data's {name} (trained by an "
            "older speechser, or the file was removed). Record it from the training data its config names: "
            "run `speechser-pack --record-inputs ...` from the recipe directory (with its data/ and dump/)")
    return path


def recorded_front_end(exp_dir: Path | str, name: str = FRONT_END_RECORD) -> FrontEnd:
    """The front-end recorded in ``exp_dir/inference/<name>``."""
    return FrontEnd.from_json(json.loads(recorded(exp_dir, name).read_text(encoding="utf-8")))


class ExperimentRecordMissing(FileNotFoundError):
    """An experiment lacks a file of its :data:`INFERENCE_DIR` record."""


def copy_global_cmvn(data_conf: Any, exp: Experiment) -> None:
    """With ``data.cmvn_type: global`` the experiment carries its normalization (``cmvn.ark``), so that
    its model can be used (decoded, fused into another model) without the training data."""
    if data_conf.cmvn_type == "global" and data_conf.cmvn_stats:
        copy_into_experiment(data_conf.cmvn_stats, exp, CMVN_FILE)


def use_experiment_cmvn(data_conf: Any, exp_dir: Path) -> None:
    """Point a loaded config's global CMVN at the experiment's own copy, where it has one."""
    if data_conf.cmvn_type == "global" and (exp_dir / CMVN_FILE).is_file():
        data_conf.cmvn_stats = str(exp_dir / CMVN_FILE)


def read_experiment_config(cls: Type[T], exp_dir: Path | str) -> T:
    """The resolved config an experiment was trained with (``exp_dir/config.yaml``)."""
    path = Path(exp_dir) / "config.yaml"
    return from_dict(cls, read_yaml(path), source=str(path))


def experiment_models(exp_dir: Path | str) -> str:
    """The weights files of an experiment, for error messages: ``"a.pt, b.pt"`` or ``"no *.pt file"``."""
    return ", ".join(sorted(f.name for f in Path(exp_dir).glob("*.pt"))) or "no *.pt file"


def resolve_checkpoint(exp_dir: Path | str, checkpoint: Optional[Path | str], trainer_conf: Any) -> Path:
    """``checkpoint`` as given (a path), or relative to ``exp_dir``; when not given, the averaged model the
    trainer writes (``valid.<metric>.ave_<n>best.pt``), else the best epoch, else the last checkpoint."""
    exp_dir = Path(exp_dir)
    if checkpoint is not None and str(checkpoint):
        for cand in (Path(checkpoint), exp_dir / checkpoint):
            if cand.is_file():
                return cand
        raise CheckpointError(f"{checkpoint}: no such checkpoint (nor in {exp_dir})")
    m = trainer_conf.best_metric
    for pattern in (f"valid.{m}.ave_*best.pt", f"valid.{m}.best.pt", "checkpoint.pt"):
        found = sorted(exp_dir.glob(pattern))
        if found:
            return found[-1]
    raise CheckpointError(f"{exp_dir}: no trained model (valid.{m}.ave_<n>best.pt, valid.{m}.best.pt, "
                            "checkpoint.pt)")


def load_trained_model(model_section: Any, checkpoint: Path | str, device: str = "auto",
                       **sizes: Any) -> nn.Module:
    """Build the model a resolved ``model`` section describes (``sizes``: ``vocab_size`` or ``num_classes``)
    and load ``checkpoint`` into it; returns it in eval mode on ``device``. Experiments written before the
    sizes were recorded in ``config.yaml`` give ``input_dim`` through their checkpoint's buffer, and their
    SER head's weights under the names before the shared head (``pool.*`` for ``head.pool.*``...)."""
    state = dict(load_model_state(checkpoint))
    legacy_dim = state.pop("input_dim", None)
    input_dim = model_section.input_dim or (int(legacy_dim) if legacy_dim is not None else 0)
    if not input_dim:
        raise ConfigError(f"{checkpoint}: the experiment's config.yaml has no model.input_dim")
    model = build_model(model_section.name, model_section.conf, input_dim=input_dim, **sizes)
    if hasattr(model, "head") and not any(k.startswith("head.") for k in state):
        state = {("head." + k if k.startswith(LEGACY_SER_HEAD) else k): v for k, v in state.items()}
    model.load_state_dict(state)
    return model.to(resolve_device(device)).eval()


def train_model(
    conf: Any,
    exp: Experiment,
    model: nn.Module,
    train_ds: Any,
    valid_ds: Any,
    collate: Callable[[Sequence[Any]], Any],
    stop_after_epoch: Optional[int] = None,
) -> Dict[str, Any]:
    """Length-bucketed loaders over the two sets (``conf.data``: ``max_frames``, ``max_batch_size``,
    ``num_workers``), a :class:`Trainer`, and the epochs; each epoch reseeds the batch order and the
    training set's augmentation draws. Under DDP the training batches and accumulation follow
    :func:`plan_global_batch` (the global batch kept whatever the process count; logged), and each rank
    validates its shard of the validation set."""
    d = conf.data
    plan = plan_global_batch(conf.trainer.accum_grad, d.max_frames, d.max_batch_size, exp.dist.world_size,
                             conf.trainer.batch_world_size)
    logging.info("global batch: %s", plan.message)
    train_loader, sampler = bucketed_loader(train_ds, train_ds.lengths, collate, plan.max_frames,
                                            plan.max_batch_size, True, conf.seed, exp.dist, d.num_workers,
                                            epoch_lengths=train_ds.epoch_lengths
                                            if getattr(train_ds, "varying_lengths", False) else None)
    valid_loader, _ = bucketed_loader(valid_ds, valid_ds.lengths, collate, d.max_frames, d.max_batch_size,
                                      False, conf.seed, exp.dist, d.num_workers, shard_eval=True)
    # the stored config keeps the configured values (a resume under another process count plans again)
    trainer_conf = dataclasses.replace(conf.trainer, accum_grad=plan.accum_grad)
    trainer = Trainer(model, exp.dir, trainer_conf, conf.optim, conf.scheduler, exp.dist, exp)

    def set_epoch(epoch: int) -> None:
        sampler.set_epoch(epoch)
        train_ds.set_epoch(epoch)
        if hasattr(model, "set_epoch"):  # models whose training changes with the epoch (a staged schedule)
            model.set_epoch(epoch)

    return trainer.run(train_loader, valid_loader, len(sampler), set_epoch, stop_after_epoch)


def model_device(model: nn.Module) -> torch.device:
    """The device a model's weights (or, for a model of buffers only, its buffers) are on."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")
