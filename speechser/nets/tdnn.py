"""1-D convolutional (TDNN) blocks over feature sequences, channels-first ``(B, C, T)``."""

from __future__ import annotations

import torch
from torch import nn


class SqueezeExcitation(nn.Module):
    """Channel gating from the masked time-average: ``(B, C, T)`` -> ``(B, C, T)``."""

    def __init__(self, channels: int, bottleneck: int = 64) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(channels, bottleneck), nn.ReLU(inplace=True), nn.Linear(bottleneck, channels), nn.Sigmoid()
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(1).to(x.dtype)  # (B, 1, T)
        mean = (x * m).sum(-1) / m.sum(-1).clamp(min=1.0)
        return x * self.fc(mean).unsqueeze(-1)


class ResTDNNBlock(nn.Module):
    """Residual block: conv(k, dilation) -> BN -> ReLU -> conv(1) -> BN -> SE, plus skip.

    Padded frames are zeroed before every convolution so that padding never
    leaks into valid frames' receptive fields. ``(B, C, T)`` -> ``(B, C, T)``.
    """

    def __init__(self, channels: int, kernel_size: int = 3, dilation: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        pad = dilation * (kernel_size - 1) // 2
        self.conv1 = nn.Conv1d(channels, channels, kernel_size, dilation=dilation, padding=pad)
        self.bn1 = nn.BatchNorm1d(channels)
        self.conv2 = nn.Conv1d(channels, channels, 1)
        self.bn2 = nn.BatchNorm1d(channels)
        self.se = SqueezeExcitation(channels)
        self.dropout = nn.Dropout(dropout)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(1).to(x.dtype)
        y = self.act(self.bn1(self.conv1(x * m)))
        y = self.bn2(self.conv2(self.dropout(y) * m))
        y = self.se(y, mask)
        return self.act(x + y) * m
