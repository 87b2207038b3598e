"""Co-attention of the emotion features over the auxiliary tasks (paper 002, sec. II-A5).

The emotion features are the encoder's frames ``x (B, T, D)`` (the ARI output in the paper) with a
validity mask ``(B, T)``; each of the ``K`` auxiliary tasks (gender, speaker, style, ASR) contributes
its head's hidden layer ``a_k (B, H)``. Each task's hidden state queries the frames (multi-head
attention over the valid frames only), which gives one task-weighted emotion summary per task:

    e_k = Attention(q = W_q a_k, K = x, V = x)                   (B, D)

and the SER classifier reads the weighted emotion features combined with the tasks' hidden states:

    z = concat_k(e_k, a_k)                                       (B, K (D + H))

The paper gives this in words (its figure and text: "leverage their interplay to guide feature
weighting ... weighted emotion features are combined with the hidden layer outputs from the
auxiliary tasks"); the attention form above is our reading of it.
"""

from __future__ import annotations

import torch
from torch import nn


class CoAttention(nn.Module):
    """Frames ``(B, T, feat_dim)`` + mask ``(B, T)`` and task states ``(B, K, aux_dim)`` ->
    ``(B, K (feat_dim + aux_dim))``."""

    def __init__(self, feat_dim: int, aux_dim: int, num_tasks: int, num_heads: int = 4, dropout: float = 0.1
                 ) -> None:
        super().__init__()
        if feat_dim % num_heads:
            raise ValueError(f"co-attention: feature width {feat_dim} is not a multiple of {num_heads} heads")
        self.query = nn.Linear(aux_dim, feat_dim)
        self.attention = nn.MultiheadAttention(feat_dim, num_heads, dropout=dropout, batch_first=True)
        self.num_tasks = num_tasks
        self.output_dim = num_tasks * (feat_dim + aux_dim)

    def forward(self, frames: torch.Tensor, mask: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
        if aux.shape[1] != self.num_tasks:
            raise ValueError(f"co-attention over {self.num_tasks} tasks got {aux.shape[1]} task states")
        e, _ = self.attention(self.query(aux), frames, frames, key_padding_mask=~mask, need_weights=False)
        return torch.cat([e, aux], dim=-1).flatten(1)
