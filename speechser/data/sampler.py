"""Length-bucketed batch sampler with a frame budget, seeded per epoch, shardable for DDP."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Iterator, List, Optional, Sequence

from torch.utils.data import Sampler


@dataclass(frozen=True)
class DistInfo:
    """This process's place in a distributed run (rank 0 of 1 when not distributed); the sampler shards
    training batches over ranks with it. :func:`speechser.train.distributed.init_distributed` makes one."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


class BucketBatchSampler(Sampler[List[int]]):
    """Batches of similar-length items.

    Items are sorted by length and cut into batches holding at most
    ``max_frames`` padded frames (``len(batch) * longest``) and at most
    ``max_batch_size`` items. With ``shuffle`` the batch order is permuted
    by a generator seeded with ``seed + epoch`` (call :meth:`set_epoch`), so
    the order is reproducible and resumable. With ``num_replicas > 1`` each
    rank takes every ``num_replicas``-th batch; with ``even_shards`` (training) the
    batch list is first padded by repetition so that every rank has the same number
    of batches (DDP needs every rank in every update), without it (validation) every
    batch is on exactly one rank and the last ranks may have one batch fewer. A batch
    with fewer than ``min_batch_size`` items (e.g. one very long utterance) is
    merged into its neighbour in length order, over the frame budget: training
    uses 2, since batch normalization cannot train on a single item.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        max_frames: int,
        max_batch_size: int = 1_000_000,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        min_batch_size: int = 1,
        even_shards: bool = True,
        epoch_lengths: Optional[Callable[[int], Sequence[int]]] = None,
    ) -> None:
        if max_frames <= 0 or max_batch_size <= 0:
            raise ValueError("max_frames and max_batch_size must be positive")
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.num_replicas = num_replicas
        self.rank = rank
        self.even_shards = even_shards
        self.max_frames, self.max_batch_size, self.min_batch_size = max_frames, max_batch_size, min_batch_size
        #: Items whose length changes with the epoch (SAILER's mixtures): the batches are rebuilt from
        #: ``epoch_lengths(epoch)`` at each :meth:`set_epoch`, so their number may change too.
        self.epoch_lengths = epoch_lengths
        # with epoch_lengths, the first epoch's (the trainer numbers epochs from 1): the batch count the
        # learning-rate schedule plans with (a later epoch with more batches ends at the schedule's floor)
        self._build(epoch_lengths(1) if epoch_lengths is not None else lengths)

    def _build(self, lengths: Sequence[int]) -> None:
        self.lengths = list(lengths)
        order = sorted(range(len(self.lengths)), key=lambda i: (self.lengths[i], i))
        self.batches: List[List[int]] = []
        batch: List[int] = []
        for idx in order:
            longest = max(self.lengths[idx], max((self.lengths[i] for i in batch), default=0))
            if batch and (longest * (len(batch) + 1) > self.max_frames or len(batch) >= self.max_batch_size):
                self.batches.append(batch)
                batch = []
            batch.append(idx)
        if batch:
            self.batches.append(batch)
        if self.min_batch_size > 1:
            self.batches = _merge_small(self.batches, self.min_batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if self.epoch_lengths is not None:
            self._build(self.epoch_lengths(epoch))

    def _epoch_batches(self) -> List[List[int]]:
        batches = list(self.batches)
        if self.shuffle:
            rng = random.Random(self.seed + self.epoch)
            rng.shuffle(batches)
        if self.num_replicas > 1 and self.even_shards:
            while len(batches) % self.num_replicas:
                batches.append(batches[len(batches) % len(self.batches)])
        if self.num_replicas > 1:
            batches = batches[self.rank :: self.num_replicas]
        return batches

    def __iter__(self) -> Iterator[List[int]]:
        return iter(self._epoch_batches())

    def __len__(self) -> int:
        n = len(self.batches)
        if self.even_shards:
            return -(-n // self.num_replicas)
        return len(range(self.rank, n, self.num_replicas))


def _merge_small(batches: List[List[int]], min_size: int) -> List[List[int]]:
    """Merge each batch smaller than ``min_size`` into the previous one (the first into the next)."""
    out: List[List[int]] = []
    for b in batches:
        if out and (len(b) < min_size or len(out[-1]) < min_size):
            out[-1] = out[-1] + b
        else:
            out.append(list(b))
    return out
