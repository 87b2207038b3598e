"""Learning-rate schedules, stepped once per optimizer update."""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR


def build_scheduler(
    name: str,
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_steps: int = 0,
    min_lr_ratio: float = 0.0,
    model_dim: int = 256,
) -> LambdaLR:
    """``constant``; ``warmup_cosine`` (linear warm-up, cosine decay to
    ``min_lr_ratio`` of the peak at ``total_steps``); ``noam`` (the Transformer
    schedule, normalized so that the configured lr is the peak reached at
    ``warmup_steps``: ``lr * min(step / warmup, sqrt(warmup / step))``).
    """
    warmup = max(warmup_steps, 0)

    if name == "constant":
        fn = lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0  # noqa: E731
    elif name == "warmup_cosine":

        def fn(step: int) -> float:
            if warmup and step < warmup:
                return (step + 1) / warmup
            progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
            return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    elif name == "noam":
        if warmup <= 0:
            raise ValueError("the noam schedule needs warmup_steps > 0")

        def fn(step: int) -> float:
            s = step + 1
            return min(s / warmup, math.sqrt(warmup / s))

    else:
        raise ValueError(f"unknown scheduler '{name}' (constant, warmup_cosine, noam)")
    return LambdaLR(optimizer, fn)
