"""The validation contract between a model and the trainer: an :class:`Evaluator` accumulates a model's
outputs over a validation set, batch by batch, into named metrics (``loss`` and whatever the task
reports: ``acc`` for ASR, ``ua``/``wa``/``macro_f1`` for SER). Under DDP each rank validates its shard and
the trainer merges the ranks' evaluators (:meth:`Evaluator.merge`) before :meth:`Evaluator.compute`."""

from __future__ import annotations

from typing import Any, Dict, Tuple


class Evaluator:
    """Accumulates a model's outputs over a validation set into metrics.

    A subclass names what it accumulates: ``SUMMED`` (counts and sums) and ``CONCATENATED`` (lists),
    which is all :meth:`merge` needs to add another rank's shard."""

    SUMMED: Tuple[str, ...] = ()
    CONCATENATED: Tuple[str, ...] = ()

    def update(self, output: Dict[str, Any], batch: Any) -> None:
        """Add one batch: ``output`` is the model's ``forward(batch)`` dict (in eval mode)."""
        raise NotImplementedError

    def merge(self, other: "Evaluator") -> None:
        """Add what ``other`` (the same kind, over other batches: another rank's shard) accumulated, so that
        :meth:`compute` gives the metrics over both sets of batches."""
        if type(other) is not type(self):
            raise TypeError(f"cannot merge a {type(other).__name__} into a {type(self).__name__}")
        if not (self.SUMMED or self.CONCATENATED):
            raise NotImplementedError(f"{type(self).__name__} cannot merge another rank's validation: give it a "
                                      "merge() (or SUMMED / CONCATENATED) to validate under DDP")
        for name in self.SUMMED:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in self.CONCATENATED:
            getattr(self, name).extend(getattr(other, name))

    def compute(self) -> Dict[str, float]:
        """The metrics over every batch added so far."""
        raise NotImplementedError
