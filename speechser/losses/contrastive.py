"""Supervised contrastive loss (Khosla et al., 2020, the "L_out" form) and the
hybrid ``(1 - alpha) * CE + alpha * SupCon`` objective."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from speechser.losses.classification import cross_entropy


def supervised_contrastive(embeddings: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Supervised contrastive loss over a batch.

    ``embeddings (B, D)`` (L2-normalized here), ``labels (B,)``. For an anchor
    ``i`` with positives ``P(i)`` (the other members of the batch with its
    label) and all others ``A(i)``::

        l_i = -1/|P(i)| * sum_{p in P(i)} log( exp(z_i.z_p / tau) / sum_{a in A(i)} exp(z_i.z_a / tau) )

    The loss is the mean of ``l_i`` over anchors that have at least one
    positive; an anchor alone in its class contributes nothing (it still acts
    as a negative for the others). A batch without any positive pair gives 0
    (with a gradient path, so that AMP/DDP see every parameter used).
    """
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    z = F.normalize(embeddings.float(), dim=-1)
    B = z.shape[0]
    sim = z @ z.t() / temperature  # (B, B)
    self_mask = torch.eye(B, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(self_mask, float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)  # row i: log p(a | i), a != i
    pos = (labels[:, None] == labels[None, :]) & ~self_mask
    n_pos = pos.sum(1)
    has_pos = n_pos > 0
    if not bool(has_pos.any()):
        return z.sum() * 0.0
    per_anchor = -(log_prob.masked_fill(~pos, 0.0)).sum(1)[has_pos] / n_pos[has_pos]
    return per_anchor.mean()


def hybrid_ce_supcon(
    logits: torch.Tensor,
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    alpha: float = 0.5,
    temperature: float = 0.1,
    label_smoothing: float = 0.0,
    weight: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """``L = (1 - alpha) * L_CE + alpha * L_SupCon``; alpha 0 is plain cross-entropy."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError("alpha must be in [0, 1]")
    ce = cross_entropy(logits, labels, label_smoothing, weight)
    if alpha == 0.0:
        return ce
    return (1 - alpha) * ce + alpha * supervised_contrastive(embeddings, labels, temperature)
