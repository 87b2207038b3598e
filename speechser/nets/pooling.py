"""Poolings from frame sequences ``(B, T, D)`` with a validity mask ``(B, T)`` to vectors."""

from __future__ import annotations

import torch
from torch import nn


class AttentiveStatsPooling(nn.Module):
    """Attentive statistics pooling: attention-weighted mean and standard deviation.

    ``(B, T, D)`` -> ``(B, 2D)``. Frame weights come from a small MLP over each
    frame concatenated with the utterance's global mean and std (so the
    attention can compare a frame to its context); padded frames get zero weight.
    """

    def __init__(self, dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.attention = nn.Sequential(
            nn.Linear(3 * dim, hidden), nn.Tanh(), nn.Linear(hidden, dim)
        )
        self.output_dim = 2 * dim

    @staticmethod
    def _stats(x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = (w * x).sum(1)
        var = (w * (x - mean.unsqueeze(1)) ** 2).sum(1)
        return mean, var.clamp(min=1e-6).sqrt()

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(-1).to(x.dtype)  # (B, T, 1)
        uniform = m / m.sum(1, keepdim=True).clamp(min=1.0)
        g_mean, g_std = self._stats(x, uniform)
        T = x.shape[1]
        context = torch.cat(
            [x, g_mean.unsqueeze(1).expand(-1, T, -1), g_std.unsqueeze(1).expand(-1, T, -1)], dim=-1
        )
        scores = self.attention(context)  # (B, T, D)
        scores = scores.masked_fill(~mask.unsqueeze(-1), torch.finfo(scores.dtype).min)
        w = torch.softmax(scores, dim=1)
        mean, std = self._stats(x, w)
        return torch.cat([mean, std], dim=-1)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the valid frames: ``x (B, T, D)``, ``mask (B, T)`` (True = valid) -> ``(B, D)``."""
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp(min=1)
