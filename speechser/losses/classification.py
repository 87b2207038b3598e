"""Classification losses."""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F


def class_weights_from_counts(counts: Sequence[float], power: float = 1.0) -> torch.Tensor:
    """Inverse-frequency weights ``(C,)``, ``(N / (C * n_c)) ** power``; a class without examples gets 0.
    With ``power`` 1 and every class present, ``Σ_c (n_c / N) w_c = 1``: the weights average to one over
    the set the counts come from (counts may be fractional: summed soft-label distributions)."""
    c = torch.tensor(counts, dtype=torch.float)
    w = torch.where(c > 0, c.sum() / (len(counts) * c.clamp(min=1e-12)), torch.zeros_like(c))
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


def soft_label_kl(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """KL divergence of the model's posteriors from target distributions (SAILER's objective, paper 004):
    ``(B, C)`` logits, ``(B, C)`` targets -> ``mean_b Σ_c t_bc (log t_bc − log softmax(z_b)_c)`` (float32;
    ``0 log 0 = 0``). With one-hot targets it is the cross-entropy. Re-weighted targets ``d ∘ w`` need not
    sum to one; the gradient is then that of the cross-entropy to ``d ∘ w``, i.e. the sample weighted by
    ``Σ_c d_c w_c``."""
    t = target.float()
    logp = F.log_softmax(logits.float(), dim=-1)
    return (torch.xlogy(t, t) - t * logp).sum(-1).mean()
