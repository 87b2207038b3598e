"""Supervised contrastive loss in three forms, and the hybrid
``(1 - alpha) * CE + alpha * SupCon`` objective.

Which form: the VLSP 2025 multi-stage ASR + SER paper (its eq. 3) sums the
positives *inside* the logarithm and weights each anchor by ``1/|P(i)|``
in front of it: ``variant="paper"``, the default and the VLSP recipe's
setting. Khosla et al.'s ``L_in`` (their eq. 3) puts the ``1/|P(i)|``
inside the log instead (``variant="in"``); their recommended ``L_out``
(their eq. 2) averages the positives' log-probabilities outside it
(``variant="out"``: what this module computed before issue 9; the Emo-DB
results in ``egs/emodb/ser1/RESULTS.md`` were obtained with it, and its
config says so explicitly).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from speechser.losses.classification import cross_entropy, soft_label_kl

#: The forms :func:`supervised_contrastive` computes.
SUPCON_VARIANTS = ("paper", "in", "out")


def supervised_contrastive(embeddings: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1,
                           variant: str = "paper") -> torch.Tensor:
    """Supervised contrastive loss over a batch.

    ``embeddings (B, D)`` (L2-normalized here to ``z``), ``labels (B,)``. For an
    anchor ``i``, ``A(i)`` is every other member of the batch and ``P(i)`` the
    members of ``A(i)`` with the label of ``i`` (its positives). With
    ``p(a | i) = exp(z_i.z_a / tau) / sum_{a' in A(i)} exp(z_i.z_a' / tau)``:

    ``variant="paper"`` (the VLSP 2025 paper's eq. 3, exactly as printed),
    positives summed inside the log, ``1/|P(i)|`` in front of it::

        l_i = -1/|P(i)| * log( sum_{p in P(i)} p(p | i) )

    ``variant="in"`` (Khosla et al., 2020, eq. 3, ``L_in``), the mean over
    positives inside the log::

        l_i = -log( 1/|P(i)| * sum_{p in P(i)} p(p | i) )

    ``variant="out"`` (Khosla et al., 2020, eq. 2, ``L_out``), the mean over
    positives outside the log::

        l_i = -1/|P(i)| * sum_{p in P(i)} log p(p | i)

    ``l_i(paper) = (l_i(in) - log|P(i)|) / |P(i)|``: the same gradient
    direction per anchor as ``L_in``, scaled by ``1/|P(i)|``, so anchors of
    frequent classes weigh less. By Jensen's inequality
    ``l_i(in) <= l_i(out)``; the three coincide when ``|P(i)| = 1``. On a
    batch of 16 with 2 classes ``L_out`` is about twice ``L_paper``, which
    changes the effective CE/SupCon balance of a fixed ``alpha``.

    Reduction: the mean of ``l_i`` over the anchors that have at least one
    positive (Khosla et al. sum over anchors; the mean keeps the scale
    independent of the batch size). An anchor alone in its class (``P(i)``
    empty) is excluded from the mean in both variants; it still acts as a
    negative, in ``A(j)``, for every other anchor ``j``. A batch without any
    positive pair gives 0 (with a gradient path, so that AMP/DDP see every
    parameter used).

    Source: P. Khosla et al., "Supervised Contrastive Learning", NeurIPS
    2020, eqs. 2 and 3.
    """
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    if variant not in SUPCON_VARIANTS:
        raise ValueError(f"unknown supervised contrastive variant '{variant}' (known: {', '.join(SUPCON_VARIANTS)})")
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
    # Only anchors with a positive from here on (rows of -inf would give NaN gradients in logsumexp).
    log_prob, pos, n_pos = log_prob[has_pos], pos[has_pos], n_pos[has_pos]
    log_pos_sum = torch.logsumexp(log_prob.masked_fill(~pos, float("-inf")), dim=1)  # log sum_p p(p | i)
    if variant == "paper":
        per_anchor = -log_pos_sum / n_pos
    elif variant == "in":
        per_anchor = -(log_pos_sum - torch.log(n_pos.float()))
    else:
        per_anchor = -log_prob.masked_fill(~pos, 0.0).sum(1) / n_pos
    return per_anchor.mean()


def hybrid_ce_supcon(
    logits: torch.Tensor,
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    alpha: float = 0.5,
    temperature: float = 0.1,
    label_smoothing: float = 0.0,
    weight: Optional[torch.Tensor] = None,
    variant: str = "paper",
    soft_target: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """``L = (1 - alpha) * L_CE + alpha * L_SupCon`` (the VLSP 2025 paper's eq. 4); alpha 0 is plain
    cross-entropy. ``variant`` picks the SupCon form (see :func:`supervised_contrastive`). With
    ``soft_target (B, C)`` the first term is the KL divergence to it (:func:`soft_label_kl`; label smoothing
    and ``weight`` are then unused: a re-weighted target carries the weights) and SupCon uses ``labels``."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError("alpha must be in [0, 1]")
    if variant not in SUPCON_VARIANTS:
        raise ValueError(f"unknown supervised contrastive variant '{variant}' (known: {', '.join(SUPCON_VARIANTS)})")
    if soft_target is not None:
        ce = soft_label_kl(logits, soft_target)
    else:
        ce = cross_entropy(logits, labels, label_smoothing, weight)
    if alpha == 0.0:
        return ce
    return (1 - alpha) * ce + alpha * supervised_contrastive(embeddings, labels, temperature, variant)
