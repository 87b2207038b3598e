"""The decode directory of a model on one data set: its one definition (written, read and checked here).

An SER decode directory (inference, k-NN interpolation, ensembles and late fusion write it):

- ``posteriors.tsv``: a header ``utt<TAB>label ...``, then one row of ``C`` posteriors per utterance
  (:func:`write_ser_decode`, :func:`read_posteriors`);
- ``hyp`` and ``ref``: ``utt label`` lines (no ``ref`` for a set without labels);
- ``scores.json``: UA, WA, macro-F1, per-class recall, ``n``, and what the writer adds (checkpoint, k-NN
  parameters, ensemble members);
- with auxiliary tasks (the metadata-enhanced and CmGI models): ``aux_<task>`` hypotheses and
  ``aux_scores.json`` (:func:`write_aux_decode`, summarised over folds by :func:`aux_summary`).

An ASR decode directory holds ``text``, ``ref``, ``confidence`` and ``scores.json``. Checks every scoring tool
runs before it trusts a decode directory:

- :func:`unique_dirs`: a list naming one directory twice (the same resolved path) would count it twice;
  refused.
- :func:`read_scores_json`: a missing or malformed ``scores.json`` is a :class:`DataDirError` naming it.
- :func:`check_fresh`: output older than the checkpoint its ``scores.json`` records was written by an
  earlier model (a failed re-decode left it in place) and is refused, naming both files. A checkpoint that
  no longer exists at the recorded path cannot be compared and is not judged.
"""

from __future__ import annotations

import datetime
import json
import logging
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from speechser.io.datadir import DataDirError
from speechser.metrics.asr import score_chars, score_words
from speechser.metrics.classification import confusion_matrix, scores_from_confusion


def unique_dirs(dirs: Iterable[Path | str], what: str = "decode directory") -> List[Path]:
    """``dirs`` as paths; the same directory given twice (after resolving) is a :class:`DataDirError`."""
    seen: Dict[Path, str] = {}
    out: List[Path] = []
    for d in dirs:
        key = Path(d).resolve()
        if key in seen:
            raise DataDirError(
                f"{what} '{d}' is given twice (also as '{seen[key]}', both {key}); "
                "each would be counted again: list every directory once"
            )
        seen[key] = str(d)
        out.append(Path(d))
    return out


def read_scores_json(decode_dir: Path | str, required: bool = True) -> Optional[Dict[str, Any]]:
    """``decode_dir/scores.json`` as a dict; missing (when ``required``) or malformed: a :class:`DataDirError`."""
    path = Path(decode_dir) / "scores.json"
    if not path.is_file():
        if required:
            raise DataDirError(f"{path}: no such file (the decode of {decode_dir} did not finish; decode again)")
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataDirError(f"{path}: cannot read it as JSON ({err}); decode again") from None
    if not isinstance(meta, dict):
        raise DataDirError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    return meta


def _when(t: float) -> str:
    return datetime.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def check_fresh(decode_dir: Path | str, outputs: Sequence[str] = ("scores.json",),
                meta: Optional[Dict[str, Any]] = None) -> None:
    """Refuse ``decode_dir`` when any of its ``outputs`` is older than the checkpoint its ``scores.json``
    records (the output cannot come from that model)."""
    d = Path(decode_dir)
    if meta is None:
        meta = read_scores_json(d, required=False)
    ckpt = (meta or {}).get("checkpoint")
    if not ckpt:
        return
    ckpt_path = Path(str(ckpt))
    if not ckpt_path.is_file():
        return
    model_time = ckpt_path.stat().st_mtime
    for name in outputs:
        out = d / name
        if out.is_file() and out.stat().st_mtime < model_time:
            raise DataDirError(
                f"{out} (written {_when(out.stat().st_mtime)}) is older than the checkpoint it claims to come "
                f"from, {ckpt_path} (modified {_when(model_time)}): it is the output of an earlier model "
                "(did the last decode fail?); decode again"
            )


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


#: The file of a decode directory with the auxiliary tasks' scores (:func:`write_aux_decode`).
AUX_SCORES = "aux_scores.json"


def write_aux_decode(out_dir: Path | str, aux: Dict[str, Dict[str, Any]]) -> Dict[str, Dict[str, float]]:
    """The auxiliary tasks' outputs in a decode directory (paper 002's Table III, paper 001's ASR WER):
    ``aux_<task>`` with ``utt hypothesis`` lines for each task (``aux`` task -> utterance -> ``(hypothesis,
    reference)``, a reference None where the set has none), and :data:`AUX_SCORES` with, over the utterances
    that have a reference, a label task's ``accuracy`` and the ASR task's (``text``) ``wer`` and ``cer``, each
    with ``n``; returns those scores."""
    out_dir = Path(out_dir)
    scores: Dict[str, Dict[str, float]] = {}
    for task, pairs in sorted(aux.items()):
        keys = sorted(pairs)
        with open(out_dir / f"aux_{task}", "w", encoding="utf-8") as f:
            f.write("".join(f"{k} {pairs[k][0]}".rstrip() + "\n" for k in keys))  # an empty hypothesis: the key alone
        scored = [k for k in keys if pairs[k][1] is not None]
        if not scored:
            continue
        if task == "text":
            refs = {k: str(pairs[k][1]) for k in scored}
            hyps = {k: str(pairs[k][0]) for k in scored}
            scores[task] = {"wer": score_words(refs, hyps)[0].error_rate, "cer": score_chars(refs, hyps).error_rate,
                            "n": len(scored)}
        else:
            scores[task] = {"accuracy": float(np.mean([pairs[k][0] == pairs[k][1] for k in scored])),
                            "n": len(scored)}
    (out_dir / AUX_SCORES).write_text(json.dumps(scores, indent=1) + "\n", encoding="utf-8")
    for task, s in scores.items():
        logging.info("%s: auxiliary task %s: %s", out_dir, task, ", ".join(f"{k} {v:.4g}" for k, v in s.items()))
    return scores


def aux_summary(decode_dirs: Sequence[Path | str]) -> str:
    """A Markdown paragraph of the auxiliary tasks' scores, the mean over the decode directories (folds) that
    have them (:data:`AUX_SCORES`); empty when none has."""
    found: Dict[str, Dict[str, List[float]]] = {}
    for d in decode_dirs:
        path = Path(d) / AUX_SCORES
        if not path.is_file():
            continue
        for task, s in json.loads(path.read_text(encoding="utf-8")).items():
            for metric, value in s.items():
                if metric != "n":
                    found.setdefault(task, {}).setdefault(metric, []).append(float(value))
    if not found:
        return ""
    parts = []
    for task, metrics in sorted(found.items()):
        values = [f"{m if m == 'accuracy' else m.upper()} {100 * np.mean(v):.2f} %" for m, v in metrics.items()]
        parts.append(f"{task} {' '.join(values)} ({len(next(iter(metrics.values())))} folds)")
    return "Auxiliary tasks, mean over folds (aux_scores.json of each decode directory): " + "; ".join(parts) + ".\n"
