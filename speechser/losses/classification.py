"""Classification losses."""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F


def class_weights_from_counts(counts: Sequence[int], power: float = 1.0) -> torch.Tensor:
    """Inverse-frequency weights ``(C,)``, ``(N / (C * n_c)) ** power``; a class without examples gets 0."""
    c = torch.tensor(counts, dtype=torch.float)
    w = torch.where(c > 0, c.sum() / (len(counts) * c.clamp(min=1)), torch.zeros_like(c))
    return w**power


def cross_entropy(
    logits: torch.Tensor,
    labels: torch.Tensor,
    label_smoothing: float = 0.0,
    weight: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """``(B, C)`` logits, ``(B,)`` labels -> scalar mean cross-entropy (computed in float32)."""
    return F.cross_entropy(
        logits.float(), labels, weight=None if weight is None else weight.to(logits.device),
        label_smoothing=label_smoothing,
    )
