"""Linear classifiers over utterance features (openSMILE functionals), fit by scikit-learn (issue 14).

Registry name ``linear_ser``. The field's classical baseline: a functional vector per utterance (the
data's ``(1, D)`` matrices; frame-level features are averaged over frames), normalized by the data's
CMVN (per speaker in the Emo-DB recipe), standardized with the training set's mean and deviation, and a
linear classifier from scikit-learn:

- ``solver: logreg``: multinomial logistic regression (``sklearn.linear_model.LogisticRegression``,
  lbfgs); the posterior is its ``predict_proba``, ``softmax(W x + b)``;
- ``solver: linear_svm``: a linear SVM (``sklearn.svm.LinearSVC``, one-against-rest); it has no
  posterior: ``softmax(W x + b)`` of its decision values stands in (ranks and argmax are the SVM's).

The regularization ``C`` is chosen from ``Cs`` by the UA on the validation set alone (the fold's
validation speaker); ties go to the smaller ``C``. With ``blocks``/``block_sets`` the vector is read as
equal-width blocks (one per encoder layer of pooled SSL features, say) and the set of blocks is chosen
with ``C`` on the same validation UA; the other columns get weight 0. The fit model is stored as tensors (mean, scale,
``W``, ``b``) in an ordinary checkpoint, so inference, k-NN (its embedding is the standardized
vector) and ensembles use it like any other model. Shapes: features ``(B, T, D)`` -> ``(B, D)`` ->
logits ``(B, C)``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from speechser.config import check_choice
from speechser.data.ser_dataset import Batch, lengths_to_mask
from speechser.metrics.classification import confusion_matrix, scores_from_confusion
from speechser.models.abs_model import AbsSERModel
from speechser.nets.pooling import masked_mean


@dataclass
class LinearSERConfig:
    solver: str = "logreg"
    #: The regularization grid (inverse strength), searched on the validation set.
    Cs: List[float] = field(default_factory=lambda: [0.0001, 0.001, 0.01, 0.1, 1.0, 10.0])
    #: ``balanced``: classes weighted by inverse training frequency (scikit-learn's rule); ``none``.
    class_weight: str = "balanced"
    max_iter: int = 5000
    #: The feature vector as ``blocks`` equal-width blocks (e.g. one per encoder layer of pooled SSL features).
    blocks: int = 1
    #: Candidate sets of block indices (0-based), chosen with ``C`` by the validation UA (ties: the earlier
    #: set, the smaller ``C``); empty: every block.
    block_sets: List[List[int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_choice(self, solver=("logreg", "linear_svm"), class_weight=("balanced", "none"))
        if not self.Cs or any(not c > 0 for c in self.Cs):
            raise ValueError(f"Cs must be positive numbers, got {self.Cs}")
        if self.blocks < 1:
            raise ValueError(f"blocks must be >= 1, got {self.blocks}")
        for s in self.block_sets:
            if not s or any(not 0 <= b < self.blocks for b in s) or len(set(s)) != len(s):
                raise ValueError(f"block_sets: {s} is not a non-empty set of block indices in 0..{self.blocks - 1}")


class LinearSER(AbsSERModel):
    #: Fit in closed form by :meth:`fit` (the SER task calls it instead of the gradient trainer).
    fits_closed_form = True

    def __init__(self, conf: LinearSERConfig, input_dim: int, num_classes: int,
                 class_weights: Optional[List[float]] = None) -> None:
        super().__init__()  # class_weights: the data config's; the solver's own are conf.class_weight
        self.conf = conf
        self._num_classes = num_classes
        self.register_buffer("mean", torch.zeros(input_dim))
        self.register_buffer("scale", torch.ones(input_dim))
        self.register_buffer("weight", torch.zeros(num_classes, input_dim))
        self.register_buffer("bias", torch.zeros(num_classes))
        self.register_buffer("chosen_c", torch.zeros(()))
        #: 1 for the columns of the chosen blocks, 0 elsewhere (their weights are 0 too).
        self.register_buffer("column_mask", torch.ones(input_dim))
        if input_dim % conf.blocks:
            raise ValueError(f"linear_ser: input dimension {input_dim} is not {conf.blocks} equal blocks")

    def _load_from_state_dict(self, state_dict: Dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        # models fit before block selection existed use every column
        state_dict.setdefault(prefix + "column_mask", torch.ones_like(self.column_mask))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def num_classes(self) -> int:  # type: ignore[override]
        return self._num_classes

    def embed_batch(self, batch: Batch) -> torch.Tensor:
        pooled = masked_mean(batch.feats.float(), lengths_to_mask(batch.lengths, batch.feats.shape[1]))
        return (pooled - self.mean) / self.scale * self.column_mask

    def classify(self, emb: torch.Tensor) -> torch.Tensor:
        return emb.float() @ self.weight.T + self.bias

    def forward(self, batch: Batch) -> Dict[str, Any]:  # type: ignore[override]
        logits = self.classify(self.embed_batch(batch))
        return {"loss": F.cross_entropy(logits, batch.labels), "logits": logits}

    def _solver(self, c: float) -> Any:
        from sklearn.linear_model import LogisticRegression
        from sklearn.svm import LinearSVC

        cw = "balanced" if self.conf.class_weight == "balanced" else None
        if self.conf.solver == "logreg":
            return LogisticRegression(C=c, class_weight=cw, max_iter=self.conf.max_iter)
        return LinearSVC(C=c, class_weight=cw, max_iter=self.conf.max_iter)

    def fit(self, x_train: np.ndarray, y_train: np.ndarray, x_valid: np.ndarray, y_valid: np.ndarray,
            labels: Optional[Sequence[str]] = None) -> Dict[str, Any]:
        """Standardize with the training statistics, fit each ``C`` on the training set, keep the one with
        the best validation UA. ``x (N, D)``, ``y (N,)``; ``labels`` name the classes in errors. Returns the
        grid's validation scores."""
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        mean = x_train.mean(0)
        scale = x_train.std(0)
        scale[scale < 1e-8] = 1.0
        xt, xv = (x_train - mean) / scale, (x_valid - mean) / scale
        classes = np.arange(self.num_classes)
        missing = sorted(int(c) for c in set(classes) - set(np.unique(y_train).tolist()))
        if missing:
            names = f" ({', '.join(labels[c] for c in missing)})" if labels is not None else ""
            raise ValueError(f"linear_ser: the training set has no utterance of class(es) {missing}{names}: "
                             "the folds leave a class out of training (make the folds again; speechser-make-folds "
                             "now refuses such folds, naming the class)")
        grid: List[Dict[str, Any]] = []
        best: Optional[tuple] = None
        width = xt.shape[1] // self.conf.blocks
        for blocks in self.conf.block_sets or [list(range(self.conf.blocks))]:
            cols = np.concatenate([np.arange(b * width, (b + 1) * width) for b in blocks])
            for c in sorted(self.conf.Cs):
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", ConvergenceWarning)
                    clf = self._solver(c).fit(xt[:, cols], y_train)
                converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
                hyp = clf.predict(xv[:, cols])
                scores = scores_from_confusion(confusion_matrix(y_valid.tolist(), hyp.tolist(), self.num_classes))
                grid.append({"blocks": list(blocks), "C": c, "valid_ua": scores["ua"], "valid_wa": scores["wa"],
                             "converged": converged})
                if best is None or scores["ua"] > best[0] + 1e-12:
                    best = (scores["ua"], c, clf, cols, list(blocks))
        assert best is not None
        _, c, clf, cols, blocks = best
        coef = np.zeros((clf.coef_.shape[0], xt.shape[1]))
        coef[:, cols] = np.asarray(clf.coef_, dtype=np.float64)
        mask = np.zeros(xt.shape[1])
        mask[cols] = 1.0
        intercept = np.asarray(clf.intercept_, dtype=np.float64)
        if coef.shape[0] == 1 and self.num_classes == 2:  # binary: one decision function for class 1
            coef, intercept = np.stack([-coef[0] / 2, coef[0] / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
        with torch.no_grad():
            self.mean.copy_(torch.from_numpy(mean).float())
            self.scale.copy_(torch.from_numpy(scale).float())
            self.weight.copy_(torch.from_numpy(coef).float())
            self.bias.copy_(torch.from_numpy(intercept).float())
            self.chosen_c.fill_(c)
            self.column_mask.copy_(torch.from_numpy(mask).float())
        logging.info("linear_ser (%s): C = %g%s chosen on the validation set (UA %.4f); grid %s", self.conf.solver, c,
                     f", blocks {blocks}" if self.conf.block_sets else "", best[0], grid)
        return {"C": c, "blocks": blocks, "valid_ua": best[0], "grid": grid}
