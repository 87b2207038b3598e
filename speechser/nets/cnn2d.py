"""2-D convolutional blocks over (frequency, time) feature maps ``(B, C, F, T)``."""

from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
from torch import nn


class ResBlock2d(nn.Module):
    """Two 3x3 convolutions with batch norm and a skip (1x1 conv when channels or stride change).

    ``(B, C_in, F, T)`` -> ``(B, C_out, F / sf, T / st)`` for ``stride = (sf, st)``.
    """

    def __init__(self, c_in: int, c_out: int, stride: Tuple[int, int] = (1, 1)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.act = nn.ReLU(inplace=True)
        self.skip: nn.Module = nn.Identity()
        if c_in != c_out or stride != (1, 1):
            self.skip = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.act(y + self.skip(x))


class CNN2dFrontend(nn.Module):
    """A small residual 2-D CNN: features ``(B, T, D)`` -> frame sequence ``(B, T', C_last * D')``.

    ``channels[i]`` and ``strides[i] = (freq, time)`` describe stage ``i``
    (one :class:`ResBlock2d` each, after a 3x3 stem with ``channels[0]``).
    The time downsampling is the product of the time strides.
    """

    def __init__(self, input_dim: int, channels: Sequence[int], strides: Sequence[Sequence[int]]) -> None:
        super().__init__()
        if len(channels) != len(strides):
            raise ValueError("channels and strides need the same length")
        self.stem = nn.Sequential(
            nn.Conv2d(1, channels[0], 3, padding=1, bias=False), nn.BatchNorm2d(channels[0]), nn.ReLU(inplace=True)
        )
        blocks: List[nn.Module] = []
        c_prev = channels[0]
        freq = input_dim
        self.time_strides: List[int] = []
        for c, (sf, st) in zip(channels, strides):
            blocks.append(ResBlock2d(c_prev, c, (sf, st)))
            c_prev = c
            freq = (freq - 1) // sf + 1
            self.time_strides.append(st)
        self.blocks = nn.Sequential(*blocks)
        self.output_dim = c_prev * freq

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        for st in self.time_strides:
            lengths = (lengths - 1) // st + 1
        return lengths

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(B, T, D)``, ``(B,)`` -> ``(B, T', output_dim)``, ``(B,)``."""
        mask = (torch.arange(feats.shape[1], device=feats.device)[None] < lengths[:, None]).to(feats.dtype)
        x = (feats * mask.unsqueeze(-1)).transpose(1, 2).unsqueeze(1)  # (B, 1, D, T)
        x = self.blocks(self.stem(x))  # (B, C, D', T')
        B, C, F, T = x.shape
        return x.reshape(B, C * F, T).transpose(1, 2), self.output_lengths(lengths).clamp(min=1, max=T)
