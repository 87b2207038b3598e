"""PCQ's multilayer lightweight CNN (MLCNN) and its PDC block (Wang et al., PCQ, paper 003, sec. 2.1).

Input: a spectrogram as a one-channel image ``(N, 1, H, W)`` (H = time frames, W = frequency bins; 300 x 200
for a 3 s segment, :mod:`speechser.nets.spectrogram`). Four layers of ``channels = (16, 32, 48, 64)``; layer
``l`` gives ``x_l (N, C_l, H / 2^l, W / 2^l)``; the adjacent pairs ``f_1 = [x_1, x_2]``, ``f_2 = [x_2, x_3]``,
``f_3 = [x_3, x_4]`` feed the CSQ modules (:mod:`speechser.nets.csq`).

**PDC block** (parameter-efficient depth convolution, Fig. 1(C)): pointwise ``C -> 2C``, depthwise 3 x 3 on
``2C`` channels, channel attention (eqs. 1-3), pointwise ``2C -> C``:

    Gap(χ)_c = 1/(W H) Σ_{i,j} (χ_c)_{i,j}                                    (1)
    ω = δ(T(Gap(χ)))                                                            (2)
    y = χ ⊗ ω                                                                   (3)

with ``T`` two bias-free fully connected layers ``2C -> 2C/6 -> 2C`` (ReLU between). Its weights number
``2C·2C (pointwise) + 9·2C (depthwise) + 2·(2C)²/6 (T) = (16/3) C² + 18 C``, the count the paper gives for the
block; the paper does not print the expansion (2) or T's reduction (6): these are the only values for which
the block has exactly that count (for ``C`` a multiple of 3; otherwise ``2C/6`` is rounded). A 3 x 3
convolution of ``C -> C`` has ``9 C²``.

**A layer** (not given in the text beyond "each layer contains a PDC block"; these choices are ours):
``Conv3x3(C_{l-1} -> C_l) + BN + ReLU`` (the channel change), the PDC block with a residual connection
(its input and output widths are equal) and batch norm after each convolution, ReLU, then ``MaxPool 2 x 2``.
With these the four-layer MLCNN has 92,080 parameters, the paper's 0.092 M (Table 3). ``block: conv3x3``
is Table 4's "w/o PDC (w/ conv3x3)" row: the PDC block replaced by ``Conv3x3(C -> C) + BN``.
"""

from __future__ import annotations

from typing import List, Sequence

import torch
from torch import nn


class ChannelAttention(nn.Module):
    """Eqs. 1-3: ``χ (N, C, H, W)`` -> ``χ ⊗ δ(T(Gap(χ)))`` with ``T`` = ``C -> C/reduction -> C`` (no biases)."""

    def __init__(self, channels: int, reduction: int = 6) -> None:
        super().__init__()
        hidden = max(1, round(channels / reduction))
        self.fc = nn.Sequential(nn.Linear(channels, hidden, bias=False), nn.ReLU(inplace=True),
                                nn.Linear(hidden, channels, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.sigmoid(self.fc(x.mean(dim=(2, 3))))
        return x * w[:, :, None, None]


class PDCBlock(nn.Module):
    """``(N, C, H, W)`` -> ``(N, C, H, W)``: pointwise ``C -> 2C``, depthwise 3 x 3, channel attention, pointwise
    ``2C -> C`` (batch norm after each convolution, ReLU after the first two), plus the input."""

    def __init__(self, channels: int, expansion: int = 2, reduction: int = 6) -> None:
        super().__init__()
        hidden = expansion * channels
        self.body = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            ChannelAttention(hidden, reduction),
            nn.Conv2d(hidden, channels, 1, bias=False), nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Conv3x3Block(nn.Module):
    """Table 4's replacement of the PDC block: ``Conv3x3(C -> C) + BN``, plus the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class MLCNNLayer(nn.Module):
    """``(N, C_in, H, W)`` -> ``(N, C_out, H / 2, W / 2)``."""

    def __init__(self, c_in: int, c_out: int, block: str = "pdc") -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))
        if block == "pdc":
            self.block: nn.Module = PDCBlock(c_out)
        elif block == "conv3x3":
            self.block = Conv3x3Block(c_out)
        else:
            raise ValueError(f"MLCNN block must be 'pdc' or 'conv3x3', got '{block}'")
        self.act = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(2, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.act(self.block(self.conv(x))))


class MLCNN(nn.Module):
    """A spectrogram ``(N, 1, H, W)`` -> the layer outputs ``[x_1, ..., x_L]``, ``x_l (N, C_l, H_l, W_l)``."""

    def __init__(self, channels: Sequence[int] = (16, 32, 48, 64), block: str = "pdc", in_channels: int = 1) -> None:
        super().__init__()
        widths = [in_channels, *channels]
        self.layers = nn.ModuleList(MLCNNLayer(a, b, block) for a, b in zip(widths[:-1], widths[1:]))
        self.channels = list(channels)

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        outs = []
        for layer in self.layers:
            x = layer(x)
            outs.append(x)
        return outs
