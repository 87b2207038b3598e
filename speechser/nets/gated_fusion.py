"""Gated fusion of two aligned feature sequences (CmGI, Gao et al., Interspeech 2024, paper 001, sec. 2.2.2).

Two sequences ``s, c (B, T, D)`` on the same time axis (a modality's self-attention output and its
cross-attention output) are mixed by a gate ``G`` in ``[0, 1]^D``:

    output = concat(s ⊙ G, c ⊙ (1 − G))                          (B, T, 2D)

- :class:`TemporalGatedFusion` (the paper's eq. 6): one gate per time step,
  ``G_t = σ(f(concat(s_t, c_t)))``, so each frame (or subword) decides how much of each input it keeps.
- :class:`PooledGatedFusion` (eq. 5, the conventional gate of Liu et al. 2020 the paper compares with):
  one gate per utterance from the mean-pooled inputs, ``G = σ(f(concat(mp(s), mp(c))))``, broadcast
  over time. On a sequence that is constant in time both give the same output.

``f`` is a linear map ``2D -> D``. The paper prints ``f(σ(·))`` (the sigmoid inside); applied literally
that is not a gate (a linear map of a sigmoid leaves ``[0, 1]``, and ``1 − G`` can be negative), so the
default is the gated-fusion form it cites, ``σ(f(·))``; ``sigmoid_first: true`` gives the printed order.
"""

from __future__ import annotations

import torch
from torch import nn

from speechser.nets.pooling import masked_mean


class _Gate(nn.Module):
    def __init__(self, dim: int, sigmoid_first: bool = False) -> None:
        super().__init__()
        self.f = nn.Linear(2 * dim, dim)
        self.sigmoid_first = sigmoid_first

    def forward(self, s: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """``s, c (..., D)`` -> gate ``(..., D)``."""
        x = torch.cat([s, c], dim=-1)
        return self.f(torch.sigmoid(x)) if self.sigmoid_first else torch.sigmoid(self.f(x))


class TemporalGatedFusion(nn.Module):
    """``s, c (B, T, D)`` -> ``concat(s ⊙ G, c ⊙ (1 − G)) (B, T, 2D)`` with a gate ``G (B, T, D)`` per step."""

    def __init__(self, dim: int, sigmoid_first: bool = False) -> None:
        super().__init__()
        self.gate = _Gate(dim, sigmoid_first)

    def forward(self, s: torch.Tensor, c: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        g = self.gate(s, c)
        return torch.cat([s * g, c * (1 - g)], dim=-1)


class PooledGatedFusion(nn.Module):
    """``s, c (B, T, D)`` and mask ``(B, T)`` -> ``concat(s ⊙ G, c ⊙ (1 − G)) (B, T, 2D)`` with one gate
    ``G (B, 1, D)`` per utterance from the masked means of ``s`` and ``c``."""

    def __init__(self, dim: int, sigmoid_first: bool = False) -> None:
        super().__init__()
        self.gate = _Gate(dim, sigmoid_first)

    def forward(self, s: torch.Tensor, c: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:
            mask = torch.ones(s.shape[:2], dtype=torch.bool, device=s.device)
        g = self.gate(masked_mean(s, mask), masked_mean(c, mask)).unsqueeze(1)
        return torch.cat([s * g, c * (1 - g)], dim=-1)

    def pooled(self, s: torch.Tensor, s_mask: torch.Tensor, c: torch.Tensor, c_mask: torch.Tensor) -> torch.Tensor:
        """Eq. 5 on two sequences of different lengths (two modalities): ``s (B, T, D)``, ``c (B, U, D)`` ->
        ``concat(mp(s) ⊙ G, mp(c) ⊙ (1 − G)) (B, 2D)``."""
        ms, mc = masked_mean(s, s_mask), masked_mean(c, c_mask)
        g = self.gate(ms, mc)
        return torch.cat([ms * g, mc * (1 - g)], dim=-1)
