"""The utterance head every SER model shares: pooling, embedding, classifier and the hybrid loss.

Shapes: frames ``(B, T, D)`` and a frame mask ``(B, T)`` -> attentive
statistics pooling ``(B, 2D)`` -> embedding ``Linear -> norm -> ReLU``
``(B, embed_dim)`` (what SupCon and the k-NN datastore see) -> dropout ->
classifier ``(B, C)``. The loss is
``L = (1 - a) * CE(logits, y) + a * SupCon(embeddings, y)``
(:func:`speechser.losses.contrastive.hybrid_ce_supcon`; ``a = supcon_weight``,
``a = 0`` is cross-entropy alone), with label smoothing and optional class
weights on the cross-entropy.

A model's config mixes in :class:`SERHeadOptions` (so a YAML sets
``embed_dim``, ``dropout``, ``supcon_weight`` ... at the top of ``model.conf``),
and the model builds one :class:`SERHead` from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Literal, Optional

import torch
from torch import nn

from speechser.config import check_ranges
from speechser.losses.classification import cross_entropy, soft_label_kl
from speechser.losses.contrastive import hybrid_ce_supcon
from speechser.nets.pooling import AttentiveStatsPooling


@dataclass
class SERHeadOptions:
    """The head's config keys (mixed into an SER model's config dataclass; a model may change defaults)."""

    embed_dim: int = 256
    dropout: float = 0.1
    label_smoothing: float = 0.0
    #: Hybrid loss ``(1 - a) * CE + a * SupCon`` on the utterance embeddings; 0 = cross-entropy only.
    supcon_weight: float = 0.0
    supcon_temperature: float = 0.1
    #: SupCon form (:func:`speechser.losses.contrastive.supervised_contrastive`): ``paper`` is the VLSP 2025
    #: paper's eq. 3 as printed (the positives summed inside the log, ``1/|P(i)|`` in front of it); ``in`` is
    #: Khosla et al.'s L_in (``1/|P(i)|`` inside the log); ``out`` averages the positives' log-probabilities
    #: outside it (their L_out). The temperature (``supcon_temperature``, 0.1) is our choice: the paper gives none.
    supcon_variant: Literal["paper", "in", "out"] = "paper"

    def __post_init__(self) -> None:
        check_ranges(self, embed_dim="[1, inf)", dropout="[0, 1)", label_smoothing="[0, 1)",
                     supcon_weight="[0, 1]", supcon_temperature="(0, inf)")
        parent = getattr(super(), "__post_init__", None)  # the next options class mixed in, if any
        if parent is not None:
            parent()


class SERHead(nn.Module):
    """Frames ``(B, T, in_dim)`` + mask ``(B, T)`` -> embeddings ``(B, embed_dim)`` -> logits ``(B, C)``.

    ``norm``: ``batch`` (BatchNorm1d; the filterbank TDNNs) or ``layer`` (LayerNorm; the SSL models) after
    the embedding's linear layer. ``class_weights`` ``(C,)`` weight the cross-entropy (not stored in
    checkpoints: a training-set statistic). ``extra_dim``: a vector ``(B, extra_dim)`` the model adds to the
    pooled frames before the embedding (the co-attention output of ``metadata_ser``)."""

    def __init__(self, in_dim: int, num_classes: int, opts: SERHeadOptions, norm: Literal["batch", "layer"],
                 class_weights: Optional[List[float]] = None, extra_dim: int = 0) -> None:
        super().__init__()
        self.opts = opts
        self.num_classes = num_classes
        #: ``in_dim`` 0: no frames to pool, the model gives an utterance vector ``(B, extra_dim)`` (CmGI).
        self.pool: Optional[AttentiveStatsPooling] = AttentiveStatsPooling(in_dim) if in_dim > 0 else None
        pooled_dim = self.pool.output_dim if self.pool is not None else 0
        norm_layer = nn.BatchNorm1d(opts.embed_dim) if norm == "batch" else nn.LayerNorm(opts.embed_dim)
        self.embed = nn.Sequential(nn.Linear(pooled_dim + extra_dim, opts.embed_dim), norm_layer, nn.ReLU())
        self.dropout = nn.Dropout(opts.dropout)
        self.classifier = nn.Linear(opts.embed_dim, num_classes)
        weight = torch.tensor(class_weights, dtype=torch.float) if class_weights is not None else None
        self.register_buffer("class_weights", weight, persistent=False)

    def pool_embed(self, x: torch.Tensor, mask: torch.Tensor, extra: Optional[torch.Tensor] = None
                   ) -> torch.Tensor:
        """Frames ``(B, T, in_dim)`` (zero beyond each length) and mask ``(B, T)`` [and ``extra``
        ``(B, extra_dim)``] -> ``(B, embed_dim)``."""
        assert self.pool is not None, "a head without pooling embeds vectors: embed_vector"
        pooled = self.pool(x, mask)
        return self.embed(pooled if extra is None else torch.cat([pooled, extra], dim=-1))

    def embed_vector(self, v: torch.Tensor) -> torch.Tensor:
        """An utterance vector ``(B, extra_dim)`` -> ``(B, embed_dim)`` (a head built with ``in_dim`` 0)."""
        return self.embed(v)

    def classify(self, emb: torch.Tensor) -> torch.Tensor:
        """Embeddings ``(B, embed_dim)`` -> logits ``(B, num_classes)`` (dropout in training)."""
        return self.classifier(self.dropout(emb))

    def training_weights(self) -> Optional[torch.Tensor]:
        """The class weights while training, None in evaluation (re-weighting is a training device: SAILER,
        paper 004, sec. 2.4, "unnecessary for validation or testing")."""
        return self.class_weights if self.training else None

    def target(self, soft: torch.Tensor) -> torch.Tensor:
        """Soft labels ``(B, C)`` -> the training target: ``d ∘ w`` with class weights in training, else ``d``."""
        w = self.training_weights()
        return soft * w.to(soft.device) if w is not None else soft

    def class_loss(self, logits: torch.Tensor, labels: Optional[torch.Tensor],
                   soft: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The classification term alone (no SupCon): the KL divergence to the (re-weighted) soft labels
        ``(B, C)`` when given, else the (weighted, smoothed) cross-entropy to ``labels (B,)``."""
        if soft is not None:
            return soft_label_kl(logits, self.target(soft))
        assert labels is not None
        return cross_entropy(logits, labels, self.opts.label_smoothing, self.training_weights())

    def loss(self, logits: torch.Tensor, emb: torch.Tensor, labels: torch.Tensor,
             soft: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The hybrid loss of logits ``(B, C)`` and embeddings ``(B, embed_dim)`` against labels ``(B,)``; with
        soft labels ``(B, C)`` (``data.soft_labels``) the KL divergence to them replaces the cross-entropy,
        their targets re-weighted by the class weights in training (``d ∘ w``, SAILER's re-weighting).
        Class weights apply in training only."""
        o = self.opts
        target = self.target(soft) if soft is not None else None
        return hybrid_ce_supcon(logits, emb, labels, o.supcon_weight, o.supcon_temperature, o.label_smoothing,
                                self.training_weights(), o.supcon_variant, soft_target=target)
