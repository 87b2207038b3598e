"""Classification metrics: UA (macro recall), WA (accuracy), macro-F1, per-class recall, confusion matrices,
and the mean and sample standard deviation of scores over cross-validation folds."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from speechser.metrics.evaluator import Evaluator


def confusion_matrix(refs: Sequence[int], hyps: Sequence[int], num_classes: int) -> np.ndarray:
    """``cm[i, j]`` = number of items of reference class ``i`` predicted as ``j``."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    for r, h in zip(refs, hyps):
        cm[r, h] += 1
    return cm


def scores_from_confusion(cm: np.ndarray) -> Dict[str, float]:
    """UA, WA and macro-F1 in [0, 1] from a confusion matrix.

    UA averages the recall of the classes that occur in the references
    (classes absent from the references are left out, as usual for UA); WA is
    plain accuracy; macro-F1 averages F1 over the same classes.
    """
    cm = np.asarray(cm, dtype=np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    tp = np.diag(cm)
    present = support > 0
    if not present.any():
        raise ValueError("empty confusion matrix")
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {
        "ua": float(recall[present].mean()),
        "wa": float(tp.sum() / cm.sum()),
        "macro_f1": float(f1[present].mean()),
    }


def mean_and_sample_std(values: Sequence[float]) -> Tuple[float, float]:
    """Mean and *sample* standard deviation of per-fold scores (Bessel's correction)::

        mean = sum_k x_k / n        std = sqrt( sum_k (x_k - mean)^2 / (n - 1) )

    The folds are a sample of the data, so the ``n - 1`` estimate is the one
    to report (``numpy.std(x, ddof=1)``, Python's ``statistics.stdev``); the
    population form (``/ n``, ``numpy.std``'s default), which the reports used
    before issue 9, understates it by ``sqrt((n - 1) / n)`` (5 % with 10
    folds). The std is NaN for fewer than two values (undefined); no values
    is a ValueError.
    """
    xs = [float(x) for x in values]
    if not xs:
        raise ValueError("mean and standard deviation of no values")
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, float("nan")
    return m, (sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) ** 0.5


def per_class_recall(cm: np.ndarray) -> np.ndarray:
    cm = np.asarray(cm, dtype=np.float64)
    support = cm.sum(axis=1)
    return np.divide(np.diag(cm), support, out=np.full(len(cm), np.nan), where=support > 0)


def format_confusion(cm: np.ndarray, labels: Sequence[str]) -> str:
    """A text table: rows are references, columns hypotheses, last column recall in %."""
    width = max(6, *(len(x) + 1 for x in labels))
    recall = per_class_recall(cm)
    lines = ["ref\\hyp".ljust(width) + "".join(lab.rjust(width) for lab in labels) + "recall%".rjust(9)]
    for i, lab in enumerate(labels):
        cells = "".join(str(int(v)).rjust(width) for v in cm[i])
        rec = "-" if np.isnan(recall[i]) else f"{100 * recall[i]:.1f}"
        lines.append(lab.ljust(width) + cells + rec.rjust(9))
    return "\n".join(lines)


def plot_confusion(cm: np.ndarray, labels: List[str], path: Path | str, title: str = "") -> None:
    """Save a row-normalized confusion matrix heat map with counts as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * len(labels), 0.8 + 0.8 * len(labels)))
    ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("reference")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center",
                    color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def average_precision(scores: Sequence[float], positive: Sequence[bool]) -> float:
    """Average precision of a ranking: ``Σ_k P@k · [item k positive] / #positives`` over the items sorted
    by decreasing score (ties in the given order). NaN without positives."""
    s = np.asarray(scores, dtype=np.float64)
    pos = np.asarray(positive, dtype=bool)
    if not pos.any():
        return float("nan")
    order = np.argsort(-s, kind="stable")
    hits = pos[order]
    precision_at_k = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision_at_k * hits).sum() / hits.sum())


class ClassificationEvaluator(Evaluator):
    """The validation metrics of every SER model: a confusion matrix of the argmax of ``output["logits"]``
    ``(B, C)`` against ``batch.labels`` ``(B,)`` -> ``ua``, ``wa``, ``macro_f1``, ``loss`` (the mean of
    ``output["loss"]`` weighted by batch size). With ``minority`` class indices also ``min_map``: the mean,
    over those classes that occur in the references, of the one-against-rest average precision of the
    class's posterior (SAILER's "average precision of minority class prediction", paper 004, sec. 2.4)."""

    def __init__(self, num_classes: int, minority: Sequence[int] = ()) -> None:
        self.num_classes = num_classes
        self.minority = list(minority)
        self.refs: List[int] = []
        self.hyps: List[int] = []
        self.posts: List[np.ndarray] = []
        self.loss_sum = 0.0
        self.count = 0

    def update(self, output: Dict[str, Any], batch: Any) -> None:
        self.refs += batch.labels.tolist()
        self.hyps += output["logits"].argmax(-1).tolist()
        if self.minority:
            self.posts.append(output["logits"].float().softmax(-1).cpu().numpy())
        self.loss_sum += float(output["loss"]) * len(batch)
        self.count += len(batch)

    SUMMED = ("loss_sum", "count")
    CONCATENATED = ("refs", "hyps", "posts")

    def merge(self, other: Evaluator) -> None:
        if isinstance(other, ClassificationEvaluator) and \
                (other.num_classes, other.minority) != (self.num_classes, self.minority):
            raise ValueError("cannot merge evaluators of different classes")
        super().merge(other)

    def compute(self) -> Dict[str, float]:
        cm = confusion_matrix(self.refs, self.hyps, self.num_classes)
        scores = scores_from_confusion(cm)
        scores["loss"] = self.loss_sum / max(self.count, 1)
        if self.minority:
            post, refs = np.concatenate(self.posts), np.asarray(self.refs)
            aps = [average_precision(post[:, c], refs == c) for c in self.minority if (refs == c).any()]
            scores["min_map"] = float(np.mean(aps)) if aps else 0.0
        return scores
