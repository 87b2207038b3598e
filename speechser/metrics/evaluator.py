"""The validation contract between a model and the trainer: an :class:`Evaluator` accumulates a model's
outputs over a validation set, batch by batch, into named metrics (``loss`` and whatever the task
reports: ``acc`` for ASR, ``ua``/``wa``/``macro_f1`` for SER)."""

from __future__ import annotations

from typing import Any, Dict


class Evaluator:
    """Accumulates a model's outputs over a validation set into metrics."""

    def update(self, output: Dict[str, Any], batch: Any) -> None:
        """Add one batch: ``output`` is the model's ``forward(batch)`` dict (in eval mode)."""
        raise NotImplementedError

    def compute(self) -> Dict[str, float]:
        """The metrics over every batch added so far."""
        raise NotImplementedError
