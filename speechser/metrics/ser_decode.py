"""The decode directory of an SER model on one data set, as inference, k-NN interpolation and ensembles
write it: ``posteriors.tsv`` (a header ``utt<TAB>label ...``, then one row of ``C`` posteriors per
utterance), ``hyp`` and ``ref`` (``utt label`` lines) and ``scores.json`` (UA, WA, macro-F1, per-class
recall, ``n``, and what the caller adds: checkpoint, k-NN parameters, ensemble members)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from speechser.io.datadir import DataDirError
from speechser.metrics.classification import confusion_matrix, scores_from_confusion


def write_ser_decode(out_dir: Path | str, keys: Sequence[str], post: Any, refs: Sequence[int],
                     labels: List[str], extra: Optional[Dict[str, Any]] = None,
                     hyps: Optional[Sequence[int]] = None) -> Dict[str, float]:
    """Write the decode directory ``out_dir`` of posteriors ``post`` ``(N, C)`` (rows in ``keys`` order,
    a tensor or an array) and references ``refs`` ``(N,)`` (label indices into ``labels``); returns the
    scores. The hypotheses are the posteriors' argmax unless ``hyps`` gives them. A set without references
(every ``refs`` entry negative, :data:`speechser.data.labels.UNKNOWN_LABEL`) gets no ``ref`` and no scores:
``scores.json`` says ``"labelled": false``, and the returned scores are empty."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    post = np.asarray(post, dtype=np.float64)
    with open(out_dir / "posteriors.tsv", "w", encoding="utf-8") as f:
        f.write("utt\t" + "\t".join(labels) + "\n")
        for k, row in zip(keys, post):
            f.write(k + "\t" + "\t".join(f"{x:.6f}" for x in row) + "\n")
    hyps = post.argmax(1).tolist() if hyps is None else list(hyps)
    with open(out_dir / "hyp", "w", encoding="utf-8") as f:
        f.writelines(f"{k} {labels[h]}\n" for k, h in zip(keys, hyps))
    if len(refs) and all(r < 0 for r in refs):  # an unlabelled set: posteriors and hypotheses only
        (out_dir / "ref").unlink(missing_ok=True)
        with open(out_dir / "scores.json", "w") as f:
            json.dump({"n": len(keys), "labelled": False, **(extra or {})}, f, indent=1)
        logging.info("%s: %d unlabelled utterances (posteriors and hypotheses, no scores)", out_dir, len(keys))
        return {}
    if any(r < 0 for r in refs):
        raise ValueError(f"{out_dir}: some utterances have a reference label and some have none")
    with open(out_dir / "ref", "w", encoding="utf-8") as f:
        f.writelines(f"{k} {labels[r]}\n" for k, r in zip(keys, refs))
    scores = scores_from_confusion(confusion_matrix(list(refs), hyps, len(labels)))
    with open(out_dir / "scores.json", "w") as f:
        json.dump({**scores, "n": len(keys), **(extra or {})}, f, indent=1)
    logging.info("%s: %d utterances, UA %.2f%% WA %.2f%%", out_dir, len(keys), 100 * scores["ua"], 100 * scores["wa"])
    return scores


def read_posteriors(path: Path | str) -> Tuple[List[str], List[str], np.ndarray]:
    """``posteriors.tsv`` -> (labels, keys, ``(N, C)`` posteriors); a malformed line names file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataDirError(f"{path}: no such file")
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or not lines[0].startswith("utt\t"):
        raise DataDirError(f"{path}:1: expected a header 'utt<TAB>label ...'")
    labels = lines[0].split("\t")[1:]
    keys, rows = [], []
    for n, line in enumerate(lines[1:], 2):
        parts = line.split("\t")
        if len(parts) != len(labels) + 1:
            raise DataDirError(f"{path}:{n}: expected {len(labels) + 1} columns, found {len(parts)}")
        try:
            rows.append([float(x) for x in parts[1:]])
        except ValueError:
            raise DataDirError(f"{path}:{n}: a posterior is not a number") from None
        keys.append(parts[0])
    return labels, keys, np.asarray(rows, dtype=np.float64).reshape(len(keys), len(labels))
