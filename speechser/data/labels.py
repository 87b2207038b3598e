"""Label lists: the fixed, ordered set of classes a task predicts."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Mapping

from speechser.io.datadir import DataDirError, read_entries


def read_label_list(path: Path | str) -> List[str]:
    """One label per line, in class-index order; duplicates and blank lines are errors."""
    path = Path(path)
    if not path.is_file():
        raise DataDirError(f"{path}: no such label list")
    labels: List[str] = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            label = line.strip()
            if not label:
                raise DataDirError(f"{path}:{lineno}: empty line in label list")
            if label in labels:
                raise DataDirError(f"{path}:{lineno}: duplicate label '{label}'")
            labels.append(label)
    if not labels:
        raise DataDirError(f"{path}: empty label list")
    return labels


#: The class index of an utterance whose auxiliary label is not in the task's list (a speaker never seen
#: in training, say): losses ignore it (``ignore_index``), accuracies skip it.
UNKNOWN_LABEL = -100


def labels_in_file(path: Path | str) -> List[str]:
    """The sorted distinct values of an ``utt label`` file (an auxiliary task's classes, from training data)."""
    values = sorted({e.value for e in read_entries(path)})
    if not values:
        raise DataDirError(f"{path}: no labels")
    return values


def read_aux_labels(path: Path | str, labels: List[str]) -> Dict[str, int]:
    """``utt label`` lines of an auxiliary task -> utterance -> class index, :data:`UNKNOWN_LABEL` for a value
    outside ``labels`` (test speakers are not training speakers)."""
    index: Mapping[str, int] = {label: i for i, label in enumerate(labels)}
    return {e.key: index.get(e.value, UNKNOWN_LABEL) for e in read_entries(path)}


def read_utt2label(path: Path | str, labels: List[str]) -> Dict[str, int]:
    """``utt label`` lines -> utterance -> class index; an unknown label names file and line."""
    index: Mapping[str, int] = {label: i for i, label in enumerate(labels)}
    out: Dict[str, int] = {}
    for e in read_entries(path):
        if e.value not in index:
            raise DataDirError(
                f"{path}:{e.lineno}: unknown label '{e.value}' for utterance '{e.key}' "
                f"(label list: {' '.join(labels)})"
            )
        out[e.key] = index[e.value]
    return out
