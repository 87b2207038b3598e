"""The contract between models and the trainer."""

from __future__ import annotations

from typing import Any, Dict

import torch
from torch import nn


class Evaluator:
    """Accumulates a model's outputs over a validation set into metrics."""

    def update(self, output: Dict[str, torch.Tensor], batch: Any) -> None:
        raise NotImplementedError

    def compute(self) -> Dict[str, float]:
        raise NotImplementedError


class AbsModel(nn.Module):
    """A trainable model: ``forward(batch)`` returns a dict with a scalar ``"loss"``
    (and whatever its evaluator reads); :meth:`make_evaluator` returns a fresh
    :class:`Evaluator`. The trainer needs nothing else."""

    def make_evaluator(self) -> Evaluator:
        raise NotImplementedError
