"""Cross-modal gated interaction (CmGI; Gao et al., Interspeech 2024, paper 001, sec. 2.2).

Inputs: acoustic frames ``x^a (B, T, D_a)`` (the SSL encoder) and semantic tokens ``x^l (B, U, D_l)``
(the text encoder), each with a validity mask. Both are first projected to ``dim`` (the paper's
eq. 3-4 attend between them, which needs one width; HuBERT-large is 1024 wide, BERT-base 768).

1. Intra-modal self-attention (eq. 3): ``s^a = SA(x^a)``, ``s^l = SA(x^l)`` (queries, keys and values
   from the same modality, as the text and Figure 2 say; the printed eq. 3 takes keys and values from
   the other modality, which would make it eq. 4 without the self-attention).
2. Inter-modal cross-attention (eq. 4): ``c^a = CA(q = s^a, kv = s^l)`` ``(B, T, dim)``,
   ``c^l = CA(q = s^l, kv = s^a)`` ``(B, U, dim)``.
3. Temporal-aware gated fusion (eq. 6): ``output^a = concat(s^a ⊙ G^a, c^a ⊙ (1 − G^a))`` with a gate per
   frame ``G^a = σ(f(concat(s^a, c^a)))``; the same on the semantic side. The printed eq. 6 pairs
   ``s^a`` with ``c^l``, which lives on the other modality's time axis (``U`` tokens, not ``T`` frames):
   it can only be ``c^a``, the cross-attention output aligned with ``s^a`` that the gate is computed from.
4. Eq. 7: ``concat(mp(output^a), mp(output^l))`` ``(B, 4 dim)``, the classifier's input.

The attention of eqs. 3-4 is written in the paper as one softmax attention with no output projection; here
each is ``nn.MultiheadAttention`` (``num_heads`` heads, 8 by default, and its output projection ``W^O``), the
usual Transformer form: a departure the paper leaves open (it gives no head count).

``interaction`` selects the rows of the paper's Table 2:

| value | Table 2 row | output |
| --- | --- | --- |
| ``sa`` | Self-attention | ``concat(mp(s^a), mp(s^l))`` (2 dim) |
| ``sa_gate`` | /w gated fusion | eq. 5 on ``s^a, s^l``: ``concat(mp(s^a) ⊙ G, mp(s^l) ⊙ (1 − G))`` (2 dim) |
| ``ca`` | Cross-modal attention | ``concat(mp(c^a), mp(c^l))`` (2 dim) |
| ``ca_gate`` | /w gated fusion | eq. 5 on ``c^a, c^l`` (2 dim) |
| ``cmgi`` | CmGI | steps 1-4 (4 dim) |
| ``cmgi_pooled`` | w/o temporal gated fusion | steps 1-4 with one mean-pooled gate per utterance and modality (4 dim) |
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from speechser.config import check_choice, check_ranges
from speechser.nets.gated_fusion import PooledGatedFusion, TemporalGatedFusion
from speechser.nets.pooling import masked_mean

INTERACTIONS = ("sa", "sa_gate", "ca", "ca_gate", "cmgi", "cmgi_pooled")


@dataclass
class CmGIConfig:
    #: Which Table-2 row (see the module docstring).
    interaction: str = "cmgi"
    #: Common width of the two modalities inside the module.
    dim: int = 768
    num_heads: int = 8
    dropout: float = 0.1
    #: The gate as printed, ``f(σ(·))``, instead of ``σ(f(·))`` (see :mod:`speechser.nets.gated_fusion`).
    sigmoid_first: bool = False

    def __post_init__(self) -> None:
        check_choice(self, interaction=INTERACTIONS)
        check_ranges(self, dim="[1, inf)", num_heads="[1, inf)", dropout="[0, 1)")


class CrossModalGatedInteraction(nn.Module):
    """``x^a (B, T, D_a)``, ``a_mask (B, T)``, ``x^l (B, U, D_l)``, ``l_mask (B, U)`` -> ``(B, output_dim)``."""

    def __init__(self, acoustic_dim: int, semantic_dim: int, conf: CmGIConfig) -> None:
        super().__init__()
        self.conf = conf
        d, h, p = conf.dim, conf.num_heads, conf.dropout
        if d % h:
            raise ValueError(f"cmgi.dim {d} is not a multiple of cmgi.num_heads {h}")
        self.proj_a = nn.Linear(acoustic_dim, d)
        self.proj_l = nn.Linear(semantic_dim, d)
        self.sa_a = nn.MultiheadAttention(d, h, dropout=p, batch_first=True)
        self.sa_l = nn.MultiheadAttention(d, h, dropout=p, batch_first=True)
        mode = conf.interaction
        self.uses_ca = mode in ("ca", "ca_gate", "cmgi", "cmgi_pooled")
        if self.uses_ca:
            self.ca_a = nn.MultiheadAttention(d, h, dropout=p, batch_first=True)
            self.ca_l = nn.MultiheadAttention(d, h, dropout=p, batch_first=True)
        if mode in ("sa_gate", "ca_gate"):
            self.gate = PooledGatedFusion(d, conf.sigmoid_first)
        elif mode in ("cmgi", "cmgi_pooled"):
            fusion = TemporalGatedFusion if mode == "cmgi" else PooledGatedFusion
            self.fuse_a = fusion(d, conf.sigmoid_first)
            self.fuse_l = fusion(d, conf.sigmoid_first)
        self.output_dim = 4 * d if mode in ("cmgi", "cmgi_pooled") else 2 * d

    @staticmethod
    def _attend(mha: nn.MultiheadAttention, q: torch.Tensor, kv: torch.Tensor, kv_mask: torch.Tensor
                ) -> torch.Tensor:
        out, _ = mha(q, kv, kv, key_padding_mask=~kv_mask, need_weights=False)
        return out

    def forward(self, xa: torch.Tensor, a_mask: torch.Tensor, xl: torch.Tensor, l_mask: torch.Tensor
                ) -> torch.Tensor:
        xa, xl = self.proj_a(xa), self.proj_l(xl)
        sa = self._attend(self.sa_a, xa, xa, a_mask)  # eq. 3, (B, T, d)
        sl = self._attend(self.sa_l, xl, xl, l_mask)  # (B, U, d)
        mode = self.conf.interaction
        if mode == "sa":
            return torch.cat([masked_mean(sa, a_mask), masked_mean(sl, l_mask)], dim=-1)
        if mode == "sa_gate":
            return self.gate.pooled(sa, a_mask, sl, l_mask)
        ca = self._attend(self.ca_a, sa, sl, l_mask)  # eq. 4, acoustic queries: (B, T, d)
        cl = self._attend(self.ca_l, sl, sa, a_mask)  # semantic queries: (B, U, d)
        if mode == "ca":
            return torch.cat([masked_mean(ca, a_mask), masked_mean(cl, l_mask)], dim=-1)
        if mode == "ca_gate":
            return self.gate.pooled(ca, a_mask, cl, l_mask)
        out_a = self.fuse_a(sa, ca, a_mask)  # eq. 6, (B, T, 2d)
        out_l = self.fuse_l(sl, cl, l_mask)  # (B, U, 2d)
        return torch.cat([masked_mean(out_a, a_mask), masked_mean(out_l, l_mask)], dim=-1)  # eq. 7
