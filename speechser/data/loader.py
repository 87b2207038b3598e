"""DataLoaders over length-bucketed batches (shared by the task set-ups)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Tuple

from torch.utils.data import DataLoader, Dataset

from speechser.data.augment import AugmentConfig
from speechser.data.ser_dataset import read_cmvn
from speechser.data.sampler import BucketBatchSampler, DistInfo
from speechser.features.fbank import CMVN


@dataclass
class FeatsDataConfig:
    """Data options every feature-based task shares; tasks subclass it with their own."""

    train_dir: str = ""
    valid_dir: str = ""
    #: ``none``, ``global`` (statistics file ``cmvn_stats``) or ``speaker`` (each dir's ``cmvn.scp``).
    cmvn_type: str = "global"
    cmvn_stats: str = ""
    #: Padded frames per batch (``batch size x longest``) and the most utterances per batch.
    max_frames: int = 20000
    max_batch_size: int = 64
    num_workers: int = 0
    #: On-the-fly waveform augmentation of the training set only (speed, pitch, reverb, noise;
    #: :mod:`speechser.data.augment`); off unless a probability is above 0. When on, training
    #: features are recomputed from the augmented audio of the data directory's ``wav.scp``.
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def cmvn_for(self, data_dir: str | Path) -> Optional[CMVN]:
        """The CMVN these options ask for, for a data directory (see :func:`read_cmvn`)."""
        return read_cmvn(Path(data_dir), self.cmvn_type, Path(self.cmvn_stats) if self.cmvn_stats else None)


def bucketed_loader(
    ds: Dataset,
    lengths: Sequence[int],
    collate: Callable[[Sequence[Any]], Any],
    max_frames: int,
    max_batch_size: int,
    shuffle: bool,
    seed: int,
    dist: DistInfo = DistInfo(),
    num_workers: int = 0,
    shard_eval: bool = False,
    epoch_lengths: Optional[Callable[[int], Sequence[int]]] = None,
) -> Tuple[DataLoader, BucketBatchSampler]:
    """A loader whose batches hold at most ``max_frames`` padded frames; training
    loaders (``shuffle``) are sharded over DDP ranks (every rank the same number of
    batches) and have no single-item batch (merged into a neighbour). Evaluation
    loaders are whole on every rank, or with ``shard_eval`` (validation during
    training) cut into the ranks' shards, each batch on exactly one rank. ``epoch_lengths``: the items'
    lengths in an epoch, where they change (mixtures); the batches are rebuilt each epoch."""
    shard = shuffle or shard_eval
    sampler = BucketBatchSampler(
        lengths, max_frames, max_batch_size, shuffle=shuffle, seed=seed,
        num_replicas=dist.world_size if shard else 1, rank=dist.rank if shard else 0,
        min_batch_size=2 if shuffle else 1, even_shards=shuffle, epoch_lengths=epoch_lengths,
    )
    return DataLoader(ds, batch_sampler=sampler, collate_fn=collate, num_workers=num_workers), sampler
