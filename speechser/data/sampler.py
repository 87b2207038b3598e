"""Length-bucketed batch sampler with a frame budget, seeded per epoch, shardable for DDP."""

from __future__ import annotations

import random
from typing import Iterator, List, Sequence

from torch.utils.data import Sampler


class BucketBatchSampler(Sampler[List[int]]):
    """Batches of similar-length items.

    Items are sorted by length and cut into batches holding at most
    ``max_frames`` padded frames (``len(batch) * longest``) and at most
    ``max_batch_size`` items. With ``shuffle`` the batch order is permuted
    by a generator seeded with ``seed + epoch`` (call :meth:`set_epoch`), so
    the order is reproducible and resumable. With ``num_replicas > 1`` each
    rank takes every ``num_replicas``-th batch (the batch list is padded by
    repetition so that every rank has the same number of batches).
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
    ) -> None:
        if max_frames <= 0 or max_batch_size <= 0:
            raise ValueError("max_frames and max_batch_size must be positive")
        self.lengths = list(lengths)
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.num_replicas = num_replicas
        self.rank = rank
        order = sorted(range(len(self.lengths)), key=lambda i: (self.lengths[i], i))
        self.batches: List[List[int]] = []
        batch: List[int] = []
        for idx in order:
            longest = max(self.lengths[idx], max((self.lengths[i] for i in batch), default=0))
            if batch and (longest * (len(batch) + 1) > max_frames or len(batch) >= max_batch_size):
                self.batches.append(batch)
                batch = []
            batch.append(idx)
        if batch:
            self.batches.append(batch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _epoch_batches(self) -> List[List[int]]:
        batches = list(self.batches)
        if self.shuffle:
            rng = random.Random(self.seed + self.epoch)
            rng.shuffle(batches)
        if self.num_replicas > 1:
            while len(batches) % self.num_replicas:
                batches.append(batches[len(batches) % len(self.batches)])
            batches = batches[self.rank :: self.num_replicas]
        return batches

    def __iter__(self) -> Iterator[List[int]]:
        return iter(self._epoch_batches())

    def __len__(self) -> int:
        n = len(self.batches)
        return -(-n // self.num_replicas)
