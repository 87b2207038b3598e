"""Cross-attention fusion: acoustic frames attend to another encoder's output (e.g. an ASR encoder)."""

from __future__ import annotations

import torch
from torch import nn


class CrossAttentionFusion(nn.Module):
    """``x (B, T, D)`` queries ``memory (B, U, M)`` (padding: ``memory_mask (B, U)``, True = valid).

    ``y = x + Dropout(MHA(LN(x), W m, W m))``, then ``y + Dropout(FFN(LN(y)))``;
    the memory is projected to ``D`` first. Output ``(B, T, D)``.

    ``modality_dropout`` p: in training, each utterance skips the fusion
    (output ``x``) with probability p, so that the acoustic path alone stays
    discriminative instead of leaning on the memory (which, e.g. from a
    frozen and cached encoder, sees no augmentation). Inference always fuses.
    """

    def __init__(self, dim: int, memory_dim: int, num_heads: int = 4, dropout: float = 0.1,
                 modality_dropout: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= modality_dropout < 1.0:
            raise ValueError(f"modality_dropout must be in [0, 1), got {modality_dropout}")
        self.modality_dropout = modality_dropout
        self.proj = nn.Linear(memory_dim, dim)
        self.norm_q = nn.LayerNorm(dim)
        self.norm_m = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.norm_ff = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * dim, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor) -> torch.Tensor:
        m = self.norm_m(self.proj(memory))
        attn, _ = self.attn(self.norm_q(x), m, m, key_padding_mask=~memory_mask, need_weights=False)
        y = x + self.dropout(attn)
        y = y + self.dropout(self.ff(self.norm_ff(y)))
        if self.training and self.modality_dropout > 0:
            skip = torch.rand(x.shape[0], 1, 1, device=x.device) < self.modality_dropout
            y = torch.where(skip, x, y)
        return y
