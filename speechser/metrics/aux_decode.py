"""The auxiliary tasks' outputs in an SER decode directory: what paper 002's Table III scores (gender and
style accuracy, the auxiliary ASR task's CER and WER) and paper 001's ASR WER (the CmGI branch's CTC
hypotheses)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Dict, List, Sequence

import numpy as np

from speechser.metrics.asr import score_chars, score_words

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
