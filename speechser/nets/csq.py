"""PCQ's channel semantic query (CSQ) module (Wang et al., PCQ, paper 003, sec. 2.3, Fig. 2).

Inputs: a shallow layer's features ``X_l (N, C_l, H_l, W_l)``, the next (deeper) layer's ``X_h (N, C_h, H_h,
W_h)`` and a one-channel query token ``Q (N, 1, H_l, W_l)`` (from the SSL branch; ``None`` without it).

1. ``X_h`` is brought to ``X_l``'s size: a 1 x 1 convolution ``C_h -> C_l`` ("C" in Fig. 2) and bilinear
   interpolation to ``(H_l, W_l)`` ("B").
2. Both are split along channels into ``Group = 4`` groups ("S") of ``g = C_l / 4`` channels, and each
   group is concatenated with the query (eq. 4): ``ϖ^i = Concat(X_l^i, X_h^i, Q)``, ``(N, 2g + 1, H_l, W_l)``.
3. ``η^i = Conv3x3^{d_i}(ϖ^i)`` (eq. 5), a 3 x 3 convolution with dilation ``d_i`` in ``(7, 5, 2, 1)``,
   ``2g + 1 -> 2g + 1`` channels (batch norm, ReLU).
4. ``η̂ = Concat(η^1 .. η^4)`` ``(N, 4 (2g + 1), H_l, W_l)``, and "a convolution operation highlights the
   emotional information": a 1 x 1 convolution to ``C_l`` channels (batch norm, ReLU) -> ``z (N, C_l, H_l, W_l)``.

Where the text is inconsistent, and what is done here: it gives ``ϖ^i`` ``Group/2 + 1`` channels, which is
what ``2g + 1`` is only when ``C_l = Group``; it gives ``η̂`` ``C_l`` channels straight from the concatenation,
which holds for no group width; we keep every channel of each group (``2g + 1``) and let step 4's
convolution map to ``C_l``.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn


class ChannelSemanticQuery(nn.Module):
    """``X_l (N, C_l, H_l, W_l)``, ``X_h (N, C_h, H_h, W_h)``, ``Q (N, 1, H_l, W_l)`` or ``None`` -> ``(N, C_l, H_l, W_l)``."""

    def __init__(self, c_low: int, c_high: int, dilations: Sequence[int] = (7, 5, 2, 1), use_query: bool = True
                 ) -> None:
        super().__init__()
        groups = len(dilations)
        if c_low % groups:
            raise ValueError(f"CSQ splits {c_low} channels into {groups} groups: make it a multiple of {groups}")
        self.groups = groups
        self.use_query = use_query
        self.match = nn.Conv2d(c_high, c_low, 1)
        width = 2 * (c_low // groups) + (1 if use_query else 0)
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv2d(width, width, 3, padding=d, dilation=d, bias=False), nn.BatchNorm2d(width),
                          nn.ReLU(inplace=True))
            for d in dilations)
        self.out = nn.Sequential(nn.Conv2d(groups * width, c_low, 1, bias=False), nn.BatchNorm2d(c_low),
                                 nn.ReLU(inplace=True))

    def forward(self, x_low: torch.Tensor, x_high: torch.Tensor, query: Optional[torch.Tensor] = None
                ) -> torch.Tensor:
        if self.use_query != (query is not None):
            raise ValueError("this CSQ module was built " + ("with" if self.use_query else "without")
                             + " a query token")
        size = x_low.shape[-2:]
        high = F.interpolate(self.match(x_high), size=size, mode="bilinear", align_corners=False)
        lows, highs = x_low.chunk(self.groups, dim=1), high.chunk(self.groups, dim=1)
        etas = []
        for i, branch in enumerate(self.branches):
            parts = [lows[i], highs[i]] + ([query] if query is not None else [])
            etas.append(branch(torch.cat(parts, dim=1)))
        return self.out(torch.cat(etas, dim=1))
