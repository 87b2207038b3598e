"""Augmented Residual Integration (ARI) of an SSL encoder's layers (paper 002, sec. II-A4).

The outputs of the first ``L − 1`` transformer layers, integrated by learned weights, are added to the
last layer's output:

    ARI(h) = h_L + Σ_{l=1}^{L−1} W_l ⊙ h_l          h_l (B, T, D): the output of transformer layer l

(the paper's eq. 3; its symbols are lost in the text we have, which names "the output of the l-th
Transformer layer" and a "weighted matrix"). We read the weighted matrix as ``W (L − 1, D)``: one
weight per layer and channel (``per_channel``, the default), so each lower layer contributes its own
channels (the paper motivates ARI by different layers carrying different information); with
``per_channel: false`` it is one scalar per layer. Against the weighted sum
``Σ_{l=0}^{L} softmax(w)_l h_l`` it keeps the last layer whole and adds the lower ones as a residual.
The weights start at zero: ARI then begins as the last layer alone and learns how much of each lower
layer to add (not normalized, so a layer can also be subtracted).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class AugmentedResidualIntegration(nn.Module):
    """Hidden states ``(h_0, h_1, ..., h_L)`` (each ``(B, T, D)``; ``h_0`` the transformer's input, not
    used) -> ``(B, T, D)``."""

    def __init__(self, num_layers: int, dim: int = 0) -> None:
        """``dim`` > 0: a weight per layer and channel ``(L − 1, dim)``; 0: a scalar per layer ``(L − 1,)``."""
        super().__init__()
        if num_layers < 2:
            raise ValueError("ARI needs at least 2 transformer layers")
        self.num_layers = num_layers
        self.weights = nn.Parameter(torch.zeros(num_layers - 1, dim) if dim > 0 else torch.zeros(num_layers - 1))

    def forward(self, hidden_states: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(hidden_states) != self.num_layers + 1:
            raise ValueError(f"ARI over {self.num_layers} layers got {len(hidden_states)} hidden states "
                             f"(expected {self.num_layers + 1}: the input and each layer's output)")
        out = hidden_states[-1]
        for w, h in zip(self.weights, hidden_states[1:-1]):
            out = out + w * h
        return out
