"""A task-agnostic trainer.

It needs a model following :class:`speechser.models.abs_model.AbsModel`
(``forward(batch)`` returns ``{"loss": scalar, ...}``, ``make_evaluator()``),
loaders whose batches have ``.to(device)`` and ``len()``, and an experiment
directory. Every epoch it writes, in this order: ``<N>epoch.pt`` (weights),
``valid.<metric>.best.pt`` when the epoch is the best so far, and
``checkpoint.pt`` (weights, optimizer, scheduler, AMP scaler, RNG states,
epoch, n-best list) — each atomically, so a kill at any moment leaves a
resumable directory. Only the ``keep_nbest`` best epoch files and the last one are kept. At the
end the n best are averaged into ``valid.<metric>.ave_<n>best.pt``.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

import torch
from torch import nn
from tqdm import tqdm

from speechser.config import ConfigValueError, check_choice, check_ranges
from speechser.models.abs_model import AbsModel
from speechser.train.checkpoint import (
    CheckpointError,
    average_checkpoints,
    load_checkpoint,
    load_init_params,
    rng_state,
    save_atomic,
    set_rng_state,
)
from speechser.train.distributed import DistInfo, all_gather_objects, broadcast_buffers, sum_over_ranks
from speechser.train.experiment import Experiment, ExperimentError, open_experiment
from speechser.train.param_groups import check_groups, param_groups
from speechser.train.scheduler import build_scheduler


@dataclass
class OptimConfig:
    name: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    betas: List[float] = field(default_factory=lambda: [0.9, 0.98])
    eps: float = 1e-8
    #: Per-module settings by parameter-name prefix, e.g. ``{ssl.: {lr: 1.0e-5}}``
    #: (:mod:`speechser.train.param_groups`); the rest train at ``lr`` / ``weight_decay``.
    groups: Dict[str, Dict[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:  # lr 0 is allowed: it keeps loaded weights fixed (e.g. to test init_param)
        check_choice(self, name=("adamw", "adam", "sgd"))
        check_ranges(self, lr="[0, inf)", weight_decay="[0, inf)", betas="[0, 1)", eps="(0, inf)")
        check_groups(self.groups)


@dataclass
class SchedulerConfig:
    name: str = "warmup_cosine"
    warmup_steps: int = 0
    #: Warm-up given in epochs (converted with the number of updates per epoch); used when > 0.
    warmup_epochs: float = 0.0
    #: Warm-up as a fraction of the run's updates (max_epochs x updates per epoch, from the data); used when
    #: > 0, before warmup_epochs and warmup_steps: a schedule that fits any amount of data.
    warmup_fraction: float = 0.0
    min_lr_ratio: float = 0.0

    def __post_init__(self) -> None:
        check_ranges(self, warmup_steps="[0, inf)", warmup_epochs="[0, inf)", warmup_fraction="[0, 1)",
                     min_lr_ratio="[0, 1]")


@dataclass
class TrainerConfig:
    max_epochs: int = 30
    grad_clip: float = 5.0
    accum_grad: int = 1
    keep_nbest: int = 5
    average_nbest: int = 5
    #: The validation metric that ranks epochs (kept, averaged, early stopping); ``epoch`` (with ``best_mode:
    #: max``) ranks by the epoch itself: the last ``keep_nbest`` are kept and the last ``average_nbest``
    #: averaged (a final model trained on every speaker for a number of epochs cross-validation chose).
    best_metric: str = "ua"
    best_mode: str = "max"
    patience: int = 0
    use_amp: bool = False
    amp_dtype: str = "bfloat16"
    log_interval: int = 50
    device: str = "auto"
    resume: bool = True
    #: Initialize weights before the first epoch from other experiments: ``path[:src_prefix[:dst_prefix]]``
    #: (see :func:`speechser.train.checkpoint.load_init_params`); ignored when resuming.
    init_param: List[str] = field(default_factory=list)
    #: DistributedDataParallel's ``find_unused_parameters``: needed by models whose loss leaves some weights
    #: out in some epochs (the staged ``cmgi_ser`` and ``metadata_*`` models); a little slower.
    find_unused_parameters: bool = False
    #: The number of processes ``accum_grad`` and the data's ``max_frames`` are meant for: under N processes the
    #: accumulation (and, where N does not divide it, the frame budget) is rescaled so that one update sees the
    #: same global batch (:func:`speechser.train.distributed.plan_global_batch`; logged). 0: each process uses
    #: the configured batch and the global batch grows with N (ESPnet's behaviour).
    batch_world_size: int = 1
    #: Train through ``torch.compile`` of the model (validation and checkpoints use the eager model, the same
    #: weights; outputs and gradients equal within 1e-5). Not faster on the 2-core CPU of
    #: test/bench/RESULTS_conformer.md (a Conformer training step at 0.89x the eager one, after a minute or more
    #: of compilation, and more for each new batch shape until shapes are marked dynamic); not measured on a GPU.
    compile: bool = False
    #: Resume even though the config (or the data) differs from what the experiment was started with
    #: (the stored ``config.yaml`` is replaced only once the checkpoint has loaded).
    allow_config_change: bool = False

    def __post_init__(self) -> None:
        check_ranges(self, max_epochs="[1, inf)", grad_clip="(0, inf]", accum_grad="[1, inf)",
                     keep_nbest="[1, inf)", average_nbest="[1, inf)", patience="[0, inf)", log_interval="[0, inf)",
                     batch_world_size="[0, inf)")
        check_choice(self, best_mode=("max", "min"), amp_dtype=("bfloat16", "float16"))
        if self.average_nbest > self.keep_nbest:
            raise ConfigValueError("average_nbest", f"{self.average_nbest} is more than keep_nbest "
                                   f"({self.keep_nbest}): only the kept epoch files can be averaged")


def build_optimizer(conf: OptimConfig, params: Iterable[Any]) -> torch.optim.Optimizer:
    """``params``: parameters, or parameter groups (:func:`speechser.train.param_groups.param_groups`)."""
    if conf.name == "adamw":
        return torch.optim.AdamW(params, lr=conf.lr, betas=tuple(conf.betas), eps=conf.eps,  # type: ignore[arg-type]
                                 weight_decay=conf.weight_decay)
    if conf.name == "adam":
        return torch.optim.Adam(params, lr=conf.lr, betas=tuple(conf.betas), eps=conf.eps,  # type: ignore[arg-type]
                                weight_decay=conf.weight_decay)
    if conf.name == "sgd":
        return torch.optim.SGD(params, lr=conf.lr, momentum=conf.betas[0], weight_decay=conf.weight_decay)
    raise ValueError(f"unknown optimizer '{conf.name}' (adamw, adam, sgd)")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Trainer:
    """Runs epochs of training and validation with checkpointing (see the module docstring)."""

    def __init__(
        self,
        model: AbsModel,
        exp_dir: Path | str,
        trainer_conf: TrainerConfig,
        optim_conf: OptimConfig,
        sched_conf: SchedulerConfig,
        dist_info: DistInfo = DistInfo(),
        experiment: Optional[Experiment] = None,
    ) -> None:
        self.conf = trainer_conf
        self.exp_dir = Path(exp_dir)
        self.experiment = experiment
        self.dist = dist_info
        if trainer_conf.best_mode not in ("max", "min"):
            raise ValueError("trainer.best_mode must be 'max' or 'min'")
        self.device = resolve_device(trainer_conf.device)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        self.model = model.to(self.device)
        self.optim_conf = optim_conf
        self.sched_conf = sched_conf
        self.optimizer = build_optimizer(optim_conf, param_groups(model, optim_conf.groups, optim_conf.lr,
                                                                  optim_conf.weight_decay))
        self.amp_dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}[trainer_conf.amp_dtype]
        self.scaler = torch.amp.GradScaler(
            self.device.type, enabled=trainer_conf.use_amp and self.amp_dtype == torch.float16
        )
        self.wrapped: nn.Module = self.model
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.wrapped = nn.parallel.DistributedDataParallel(
                self.model, device_ids=ids, find_unused_parameters=trainer_conf.find_unused_parameters)
        if trainer_conf.compile:
            self.wrapped = torch.compile(self.wrapped)  # type: ignore[assignment]
        self.nbest: List[Tuple[float, int]] = []  # (metric, epoch), best first
        self.history: List[Dict[str, float]] = []  # one row per finished epoch (train_stats.tsv)
        self.epoch = 0
        self.scheduler: Optional[torch.optim.lr_scheduler.LambdaLR] = None

    # -- checkpoints -------------------------------------------------------
    @property
    def metric_name(self) -> str:
        return self.conf.best_metric

    def _is_better(self, a: float, b: float) -> bool:
        return a > b if self.conf.best_mode == "max" else a < b

    def _state(self) -> Dict[str, Any]:
        assert self.scheduler is not None
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "nbest": self.nbest,
            "history": self.history,
            "rng": rng_state(),
        }

    def _resume(self) -> None:
        path = self.exp_dir / "checkpoint.pt"
        if not (self.conf.resume and path.is_file()):
            return
        try:
            state = load_checkpoint(path)
            if not isinstance(state, dict) or "model" not in state or "optimizer" not in state:
                raise CheckpointError(f"{path}: not a resumable checkpoint (no model and optimizer state)")
        except CheckpointError as err:
            raise CheckpointError(f"{err}. {self._recovery_hint()}") from err
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            assert self.scheduler is not None
            self.scheduler.load_state_dict(state["scheduler"])
            self.scaler.load_state_dict(state["scaler"])
            self.epoch = int(state["epoch"])
            self.nbest = [tuple(x) for x in state["nbest"]]  # type: ignore[misc]
            self.history = list(state.get("history", []))
            set_rng_state(state["rng"])
        except (RuntimeError, ValueError, KeyError, TypeError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ExperimentError(
                f"{path} does not fit the model and optimizer this config builds ({first}); "
                f"{self.exp_dir / 'config.yaml'} is unchanged. Train the changed model into a new --exp-dir, "
                "or start over here with --trainer.resume false (the old run is moved into backup.<time>/)."
            ) from err
        if self.experiment is not None:
            self.experiment.resumed()
        logging.info("resumed from %s at the end of epoch %d", path, self.epoch)

    def _epoch_files(self) -> List[Tuple[int, Path]]:
        out = []
        for p in self.exp_dir.glob("*epoch.pt"):
            stem = p.name[: -len("epoch.pt")]
            if stem.isdigit():
                out.append((int(stem), p))
        return sorted(out)

    def _recovery_hint(self) -> str:
        """How to go on when ``checkpoint.pt`` is damaged: from the newest epoch file that loads."""
        files = self._epoch_files()
        if not files:
            return (f"There is no epoch file in {self.exp_dir} to start again from: start over with "
                    "--trainer.resume false (the damaged run is moved into backup.<time>/).")
        names = ", ".join(p.name for _, p in files)
        good = None
        for _, p in reversed(files):
            try:
                load_checkpoint(p)
                good = p
                break
            except CheckpointError:
                continue
        if good is None:
            return f"The epoch files in {self.exp_dir} ({names}) are damaged too: start over with --trainer.resume false."
        return (f"The epoch files in {self.exp_dir}: {names}. To go on from the weights of the last good one "
                f"(the optimizer state is lost), run the same command with --trainer.resume false "
                f"--trainer.init_param '[{good}]': the damaged run is moved into {self.exp_dir}/backup.<time>/, "
                "not deleted.")

    def _save_epoch(self, metric: float) -> None:
        if not self.dist.is_main:
            return
        save_atomic(self.model.state_dict(), self.exp_dir / f"{self.epoch}epoch.pt")
        is_best = not self.nbest or self._is_better(metric, self.nbest[0][0])
        self.nbest.append((metric, self.epoch))
        sign = -1.0 if self.conf.best_mode == "max" else 1.0
        self.nbest.sort(key=lambda me: (sign * me[0], me[1]))
        self.nbest = self.nbest[: self.conf.keep_nbest]
        if is_best:
            save_atomic(self.model.state_dict(), self.exp_dir / f"valid.{self.metric_name}.best.pt")
        save_atomic(self._state(), self.exp_dir / "checkpoint.pt")
        # Kept: the n best (to average) and the last epoch (to go on from should checkpoint.pt be damaged).
        keep = {ep for _, ep in self.nbest} | {self.epoch}
        for ep, p in self._epoch_files():
            if ep not in keep:
                p.unlink(missing_ok=True)

    def _write_stats(self, path: Path) -> None:
        """Rewrite ``train_stats.tsv`` from the history kept in ``checkpoint.pt`` (so a
        resumed run has exactly one row per epoch)."""
        if not self.dist.is_main or not self.history:
            return
        columns = list(self.history[0])
        for row in self.history[1:]:  # loss terms a later stage adds (a staged model's SER term)
            columns += [c for c in row if c not in columns]
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f, delimiter="\t")
            w.writerow(columns)
            for row in self.history:
                w.writerow([int(row[c]) if c == "epoch" else f"{row[c]:.5f}" if c in row else "" for c in columns])
        tmp.replace(path)

    def average_nbest(self) -> Optional[Path]:
        """Average the kept n-best epoch files; returns the written path."""
        n = min(self.conf.average_nbest, len(self.nbest))
        if n == 0 or not self.dist.is_main:
            return None
        epochs = [ep for _, ep in self.nbest[:n]]
        out = self.exp_dir / f"valid.{self.metric_name}.ave_{n}best.pt"
        save_atomic(average_checkpoints([self.exp_dir / f"{ep}epoch.pt" for ep in epochs]), out)
        logging.info("averaged epochs %s into %s", epochs, out)
        return out

    # -- loops -------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager:
        if not self.conf.use_amp:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def train_one_epoch(self, loader: Iterable[Any], n_batches: int) -> Dict[str, float]:
        self.wrapped.train()
        total, count = 0.0, 0
        terms: Dict[str, float] = {}  # the model's loss terms (out["loss_<name>"]), summed like the loss
        accum = self.conf.accum_grad
        self.optimizer.zero_grad(set_to_none=True)
        bar = tqdm(loader, total=n_batches, desc=f"epoch {self.epoch}", disable=None if self.dist.is_main else True,
                   leave=False, mininterval=2.0)
        for i, batch in enumerate(bar, start=1):
            batch = batch.to(self.device)
            sync = i % accum == 0 or i == n_batches
            ctx = self.wrapped.no_sync() if (self.dist.enabled and not sync) else contextlib.nullcontext()
            with ctx:
                with self._autocast():
                    out = self.wrapped(batch)
                loss = out["loss"]
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"non-finite loss {loss.item()} at epoch {self.epoch}, batch {i} "
                                             f"(first key {batch.keys[0]})")
                self.scaler.scale(loss / accum).backward()
            if sync:
                self.scaler.unscale_(self.optimizer)
                grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.conf.grad_clip)
                if torch.isfinite(grad_norm):
                    self.scaler.step(self.optimizer)
                else:
                    logging.warning("epoch %d batch %d: non-finite gradient norm, update skipped", self.epoch, i)
                self.scaler.update()
                self.optimizer.zero_grad(set_to_none=True)
                assert self.scheduler is not None
                self.scheduler.step()
            total += float(loss.detach()) * len(batch)
            count += len(batch)
            for k, v in out.items():
                if k.startswith("loss_") and isinstance(v, torch.Tensor) and v.numel() == 1:
                    terms[k] = terms.get(k, 0.0) + float(v) * len(batch)
            bar.set_postfix(loss=f"{total / count:.3f}")
            if self.conf.log_interval and i % self.conf.log_interval == 0:
                logging.info("epoch %d %d/%d: loss %.4f lr %.3g", self.epoch, i, n_batches, total / count,
                             self.optimizer.param_groups[0]["lr"])
        total, count = sum_over_ranks([total, count], self.dist)  # the loss over every rank's batches
        if self.dist.enabled:  # ranks may have seen different terms (a batch without secondary labels ...)
            merged: Dict[str, float] = {}
            for rank_terms in all_gather_objects(terms, self.dist):
                for k, v in rank_terms.items():
                    merged[k] = merged.get(k, 0.0) + v
            terms = merged
        count = max(count, 1)
        return {"loss": total / count, **{k: terms[k] / count for k in sorted(terms)}}

    @torch.no_grad()
    def validate(self, loader: Iterable[Any]) -> Dict[str, float]:
        """The model's metrics over ``loader``; under DDP each rank evaluates its shard of the validation set
        and the ranks' evaluators are merged, so every rank returns the metrics over the whole set. The ranks
        first take rank 0's buffers (batch-norm running statistics, which each rank's last training forward
        changed), so every shard is evaluated with the model rank 0 saves."""
        if self.dist.enabled:
            broadcast_buffers(self.model, self.dist)
        self.model.eval()
        evaluator = self.model.make_evaluator()
        for batch in loader:
            batch = batch.to(self.device)
            with self._autocast():
                out = self.model(batch)
            evaluator.update(out, batch)
        if self.dist.enabled:
            shards = all_gather_objects(evaluator, self.dist)
            evaluator = shards[0]
            for other in shards[1:]:
                evaluator.merge(other)
        return evaluator.compute()

    def run(
        self,
        train_loader: Iterable[Any],
        valid_loader: Iterable[Any],
        n_train_batches: int,
        set_epoch: Any = None,
        stop_after_epoch: Optional[int] = None,
    ) -> Dict[str, Any]:
        """Train until ``max_epochs`` (or early stop); returns a summary.

        ``set_epoch(epoch)`` is called before each epoch (the sampler's seed).
        ``stop_after_epoch`` ends the run after that epoch's checkpoint is
        written, as a kill at that point would (used to test resuming).
        """
        self.exp_dir.mkdir(parents=True, exist_ok=True)
        updates_per_epoch = math.ceil(n_train_batches / self.conf.accum_grad)
        total = updates_per_epoch * self.conf.max_epochs
        warmup = self.sched_conf.warmup_steps
        if self.sched_conf.warmup_fraction > 0:
            warmup = max(1, int(round(self.sched_conf.warmup_fraction * total)))
        elif self.sched_conf.warmup_epochs > 0:
            warmup = int(round(self.sched_conf.warmup_epochs * updates_per_epoch))
        logging.info("schedule %s: %d updates (%d an epoch x %d epochs), warm-up %d", self.sched_conf.name, total,
                     updates_per_epoch, self.conf.max_epochs, warmup)
        if warmup >= total:
            logging.warning("the warm-up (%d updates) is as long as the whole run (%d updates: %d an epoch on this "
                            "data): the learning rate never reaches its peak. Set scheduler.warmup_fraction (e.g. "
                            "0.1) to warm up over a share of the run, or train longer", warmup, total, updates_per_epoch)
        self.scheduler = build_scheduler(
            self.sched_conf.name, self.optimizer, total, warmup, self.sched_conf.min_lr_ratio,
        )
        self._resume()
        if self.epoch == 0 and self.conf.init_param:
            load_init_params(self.model, self.conf.init_param)
        n_params = sum(p.numel() for p in self.model.parameters())
        logging.info("model: %s, %.2f M parameters, device %s", type(self.model).__name__, n_params / 1e6, self.device)
        stats_path = self.exp_dir / "train_stats.tsv"
        bad_epochs = 0
        while self.epoch < self.conf.max_epochs:
            self.epoch += 1
            if set_epoch is not None:
                set_epoch(self.epoch)
            t0 = time.time()
            train_stats = self.train_one_epoch(train_loader, n_train_batches)
            valid_stats = self.validate(valid_loader)
            if self.metric_name == "epoch":  # the last epochs are "best": a run whose length was chosen elsewhere
                metric = float(self.epoch)
            elif self.metric_name not in valid_stats:
                raise KeyError(f"best_metric '{self.metric_name}' not among valid metrics {sorted(valid_stats)}")
            else:
                metric = valid_stats[self.metric_name]
            improved = not self.nbest or self._is_better(metric, self.nbest[0][0])
            elapsed = time.time() - t0
            terms = {k: v for k, v in train_stats.items() if k != "loss"}
            self.history.append({"epoch": self.epoch, "train_loss": train_stats["loss"],
                                 **{f"train_{k}": v for k, v in terms.items()},
                                 **{f"valid_{k}": v for k, v in sorted(valid_stats.items())}, "seconds": elapsed})
            self._save_epoch(metric)
            self._write_stats(stats_path)
            logging.info(
                "epoch %d: train loss %.4f%s | valid %s | lr %.3g | %.1fs",
                self.epoch, train_stats["loss"],
                f" ({' '.join(f'{k[5:]} {v:.4f}' for k, v in terms.items())})" if terms else "",
                " ".join(f"{k} {v:.4f}" for k, v in sorted(valid_stats.items())),
                self.optimizer.param_groups[0]["lr"], elapsed,
            )
            bad_epochs = 0 if improved else bad_epochs + 1
            if self.conf.patience and bad_epochs >= self.conf.patience:
                logging.info("no improvement of valid %s for %d epochs: stopping", self.metric_name, bad_epochs)
                break
            if stop_after_epoch is not None and self.epoch >= stop_after_epoch:
                return {"stopped_at": self.epoch}
        averaged = self.average_nbest()
        return {"epochs": self.epoch, "nbest": self.nbest, "averaged": str(averaged) if averaged else None}


def start_experiment(conf: Any, exp_dir: Path) -> Experiment:
    """What every training entry does first: join the process group (under torchrun), create and
    lock ``exp_dir``, check that a resume is compatible with the stored config and data, write the
    resolved ``config.yaml`` when starting (rank 0; see :mod:`speechser.train.experiment`), seed
    every RNG. The caller hands the result to :class:`Trainer` and closes it when done."""
    from speechser.train.checkpoint import seed_everything
    from speechser.train.distributed import init_distributed

    dist = init_distributed(conf.trainer.device)
    try:
        exp: Optional[Experiment] = open_experiment(conf, Path(exp_dir), dist)
    except Exception:
        _all_ranks_ok(dist, False)  # the other ranks stop too rather than wait for this one in DDP
        raise
    if not _all_ranks_ok(dist, True):
        assert exp is not None
        exp.close()
        raise ExperimentError(f"another process of this distributed training refused to start in {exp_dir} "
                              "(its error is in its output, rank 0's in train.log)")
    seed_everything(conf.seed)
    assert exp is not None
    return exp


def _all_ranks_ok(dist: DistInfo, ok: bool) -> bool:
    """Under DDP, whether every rank got ``ok`` (a collective: every rank must call it)."""
    if not dist.enabled:
        return ok
    import torch.distributed as tdist

    nccl = tdist.get_backend() == "nccl"
    flag = torch.tensor([0 if ok else 1], device=torch.device("cuda", dist.local_rank) if nccl else "cpu")
    tdist.all_reduce(flag)
    return int(flag.item()) == 0
