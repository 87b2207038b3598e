"""Issue 17: the global batch kept across process counts, validation sharded over ranks and merged."""

import random

import numpy as np
import pytest
import torch

from speechser.data.sampler import BucketBatchSampler
from speechser.metrics.asr import TokenAccuracyEvaluator
from speechser.metrics.classification import ClassificationEvaluator
from speechser.metrics.evaluator import Evaluator
from speechser.models.bestrq_conformer import MaskedPredictionEvaluator
from speechser.train.distributed import plan_global_batch


def test_the_global_batch_is_kept_by_accumulation_where_the_process_count_divides_it():
    p = plan_global_batch(accum_grad=8, max_frames=4000, max_batch_size=32, world_size=4)
    assert (p.accum_grad, p.max_frames, p.max_batch_size) == (2, 4000, 32)
    assert "accum_grad 8 -> 2; 4 x 2 x 4000 frames per update (configured 8 x 4000)" in p.message
    # a config meant for 8 GPUs run on one: 8 times the accumulation
    p = plan_global_batch(accum_grad=2, max_frames=4000, max_batch_size=32, world_size=1, batch_world_size=8)
    assert (p.accum_grad, p.max_frames) == (16, 4000)
    same = plan_global_batch(accum_grad=3, max_frames=100, max_batch_size=5, world_size=2, batch_world_size=2)
    assert (same.accum_grad, same.max_frames, same.max_batch_size) == (3, 100, 5) and "->" not in same.message


def test_where_it_does_not_divide_the_frame_budget_makes_up_the_rest():
    # accum 1 on 2 processes: each takes half the frames (and half the utterances) per batch
    p = plan_global_batch(accum_grad=1, max_frames=10000, max_batch_size=64, world_size=2)
    assert (p.accum_grad, p.max_frames, p.max_batch_size) == (1, 5000, 32)
    # 3 on 2: 2 batches of 3/4 the frames, 2 x 2 x 7500 = 3 x 10000
    p = plan_global_batch(accum_grad=3, max_frames=10000, max_batch_size=64, world_size=2)
    assert (p.accum_grad, p.max_frames, p.max_batch_size) == (2, 7500, 48)
    for world in range(1, 9):
        for accum in range(1, 9):
            q = plan_global_batch(accum, 20000, 100, world)
            assert abs(world * q.accum_grad * q.max_frames - accum * 20000) <= world * q.accum_grad


def test_batch_world_size_0_keeps_each_process_batch_as_configured():
    p = plan_global_batch(accum_grad=2, max_frames=10000, max_batch_size=64, world_size=4, batch_world_size=0)
    assert (p.accum_grad, p.max_frames, p.max_batch_size) == (2, 10000, 64)
    assert "global batch of 8 x 10000 frames" in p.message


def test_validation_shards_cover_every_batch_once_and_training_shards_are_even():
    lengths = [random.Random(0).randint(50, 400) for _ in range(103)]
    whole = BucketBatchSampler(lengths, 1000, shuffle=False)
    for world in (2, 3, 4, 7):
        shards = [BucketBatchSampler(lengths, 1000, shuffle=False, num_replicas=world, rank=r, even_shards=False)
                  for r in range(world)]
        got = sorted(tuple(b) for s in shards for b in s)
        assert got == sorted(tuple(b) for b in whole)  # every batch on exactly one rank
        assert [len(s) for s in shards] == [len(list(s)) for s in shards]
        train = [BucketBatchSampler(lengths, 1000, shuffle=True, num_replicas=world, rank=r) for r in range(world)]
        assert len({len(list(s)) for s in train}) == 1  # DDP needs every rank in every update


class _Batch:
    def __init__(self, labels, targets=None, lengths=None):
        self.labels = torch.tensor(labels)
        self.targets, self.target_lengths = targets, lengths

    def __len__(self):
        return len(self.labels)


def _classification_batches(n: int, classes: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        b = int(torch.randint(1, 6, (1,), generator=g))
        logits = torch.randn(b, classes, generator=g)
        yield {"logits": logits, "loss": torch.rand((), generator=g)}, _Batch(torch.randint(0, classes, (b,), generator=g).tolist())


def test_merged_shards_give_the_metrics_of_the_whole_set():
    batches = list(_classification_batches(11, 4, 3))
    whole = ClassificationEvaluator(4, minority=[2, 3])
    for out, b in batches:
        whole.update(out, b)
    ranks = [ClassificationEvaluator(4, minority=[2, 3]) for _ in range(3)]
    for i, (out, b) in enumerate(batches):
        ranks[i % 3].update(out, b)
    for other in ranks[1:]:
        ranks[0].merge(other)
    want, got = whole.compute(), ranks[0].compute()
    assert set(want) == set(got) == {"ua", "wa", "macro_f1", "loss", "min_map"}
    for k in want:
        assert got[k] == pytest.approx(want[k], abs=1e-12)
    # the averages of the shards' metrics would not be the whole set's (the check is not vacuous)
    parts = [ClassificationEvaluator(4) for _ in range(3)]
    for i, (out, b) in enumerate(batches):
        parts[i % 3].update(out, b)
    assert abs(np.mean([p.compute()["ua"] for p in parts]) - want["ua"]) > 1e-6

    tok_whole, tok = TokenAccuracyEvaluator(), [TokenAccuracyEvaluator(), TokenAccuracyEvaluator()]
    for i in range(5):
        targets = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]])
        b = _Batch([0, 0], targets, torch.tensor([3, 2]))
        out = {"loss": torch.tensor(float(i)), "hyps": [[1, 2][: i % 3], [4, 5, 6][: 3 - i % 2]]}
        tok_whole.update(out, b)
        tok[i % 2].update(out, b)
    tok[0].merge(tok[1])
    assert tok[0].compute() == tok_whole.compute()

    mp_whole, mp = MaskedPredictionEvaluator(), [MaskedPredictionEvaluator(), MaskedPredictionEvaluator()]
    for i in range(4):
        out, b = {"loss": torch.tensor(0.5 * i), "correct": i, "masked": 10}, _Batch([0] * (i + 1))
        mp_whole.update(out, b)
        mp[i % 2].update(out, b)
    mp[0].merge(mp[1])
    assert mp[0].compute() == mp_whole.compute()


def test_an_evaluator_without_merge_or_of_another_kind_is_refused():
    with pytest.raises(NotImplementedError, match="give it a merge"):
        Evaluator().merge(Evaluator())
    with pytest.raises(TypeError, match="cannot merge a TokenAccuracyEvaluator into a ClassificationEvaluator"):
        ClassificationEvaluator(2).merge(TokenAccuracyEvaluator())
