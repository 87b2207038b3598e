"""The contracts between models and the code that trains and uses them.

- :class:`AbsModel`: what the trainer needs of any model: ``forward(batch)``
  returns a dict with a scalar ``"loss"`` (and whatever its evaluator reads);
  :meth:`AbsModel.make_evaluator` returns a fresh
  :class:`~speechser.metrics.evaluator.Evaluator`.
- :class:`AbsSERModel`: what SER inference, k-NN interpolation and ensembles
  need of an utterance classifier: :meth:`AbsSERModel.embed_batch` (a batch ->
  utterance embeddings ``(B, E)``) and :meth:`AbsSERModel.classify`
  (embeddings -> logits ``(B, C)``). Its head, loss and evaluator are shared
  (:class:`~speechser.nets.ser_head.SERHead`,
  :class:`~speechser.metrics.classification.ClassificationEvaluator`); a new
  SER model writes only ``__init__`` (building ``self.head``) and
  ``embed_batch``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import torch
from torch import nn

from speechser.metrics.classification import ClassificationEvaluator
from speechser.metrics.evaluator import Evaluator
from speechser.nets.ser_head import SERHead

__all__ = ["AbsModel", "AbsSERModel", "Evaluator"]


class AbsModel(nn.Module):
    """A trainable model: ``forward(batch)`` -> ``{"loss": scalar, ...}``; ``make_evaluator()``."""

    def make_evaluator(self) -> Evaluator:
        raise NotImplementedError


class AbsSERModel(AbsModel):
    """An utterance classifier with the shared :class:`SERHead` (``self.head``, set by ``__init__``)."""

    head: SERHead

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    def embed_batch(self, batch: Any) -> torch.Tensor:
        """A batch (:class:`speechser.data.ser_dataset.Batch`) -> utterance embeddings ``(B, embed_dim)``."""
        raise NotImplementedError

    def classify(self, emb: torch.Tensor) -> torch.Tensor:
        """Utterance embeddings ``(B, embed_dim)`` -> logits ``(B, num_classes)``."""
        return self.head.classify(emb)

    def utterance_outputs(self, batch: Any) -> Tuple[torch.Tensor, torch.Tensor]:
        """A batch -> embeddings ``(B, embed_dim)`` and logits ``(B, num_classes)`` (what inference and
        scoring read; a model that classifies parts of an utterance, PCQ's segments, aggregates here)."""
        emb = self.embed_batch(batch)
        return emb, self.classify(emb)

    def decode_outputs(self, batch: Any) -> Tuple[torch.Tensor, torch.Tensor, Dict[str, List[Any]]]:
        """What decoding records: :meth:`utterance_outputs` and the predictions of the model's auxiliary tasks
        per utterance (batch order): a label file (``utt2gender``) -> class indices, ``text`` -> the CTC
        hypotheses. None here; models with auxiliary tasks override it."""
        emb, logits = self.utterance_outputs(batch)
        return emb, logits, {}

    def forward(self, batch: Any) -> Dict[str, Any]:  # type: ignore[override]
        emb = self.embed_batch(batch)
        logits = self.classify(emb)
        return {"loss": self.head.loss(logits, emb, batch.labels, batch.soft), "logits": logits.detach()}

    #: Class indices whose mean average precision validation reports as ``min_map`` (the task sets them from
    #: ``data.soft_labels.majority``: every other class); not part of the model's weights.
    minority_classes: Tuple[int, ...] = ()

    def make_evaluator(self) -> ClassificationEvaluator:
        return ClassificationEvaluator(self.num_classes, self.minority_classes)


class StagedFreezing:
    """Mixin for a model whose later training stage freezes some of its modules (paper 001's phase 2,
    paper 002's stage 2). The model says which in ``frozen_modules()``; :meth:`set_frozen` turns their
    gradients off and keeps them in eval mode (dropout off, normalization statistics kept) through every
    later ``train()``. Freezing is one-way within a run: ``requires_grad`` flags are not in checkpoints,
    so the model's ``set_epoch`` decides the stage from the epoch and a resumed run freezes again.
    Put it before ``nn.Module`` in the bases so that its ``train`` runs."""

    _frozen: bool = False
    training: bool

    def frozen_modules(self) -> List[nn.Module]:
        raise NotImplementedError

    def set_frozen(self, frozen: bool) -> None:
        if frozen:
            for module in self.frozen_modules():
                module.requires_grad_(False)
        self._frozen = frozen
        self.train(self.training)

    def train(self, mode: bool = True) -> Any:
        super().train(mode)  # type: ignore[misc]
        if self._frozen:
            for module in self.frozen_modules():
                module.eval()
        return self
