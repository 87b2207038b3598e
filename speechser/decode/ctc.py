"""CTC decoding: batched greedy search with per-utterance confidence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

import torch


@dataclass
class Hypothesis:
    tokens: List[int]
    #: Mean, over the emitted tokens, of each token's highest CTC posterior within its run of frames;
    #: 0.0 for an empty hypothesis. In [0, 1].
    confidence: float


def ctc_greedy_search(log_probs: torch.Tensor, lengths: torch.Tensor, blank: int = 0) -> List[Hypothesis]:
    """``log_probs (B, T, V)`` (log-softmax), ``lengths (B,)`` -> one :class:`Hypothesis` each.

    Best path: the argmax per frame, repeats collapsed, blanks removed. The
    argmax and the run boundaries are computed for the whole batch at once.
    """
    B, T, _ = log_probs.shape
    best_lp, best = log_probs.max(dim=-1)  # (B, T)
    valid = torch.arange(T, device=log_probs.device)[None] < lengths[:, None]
    prev = torch.cat([torch.full_like(best[:, :1], -1), best[:, :-1]], dim=1)
    new_run = (best != prev) & valid
    emitted = new_run & (best != blank)
    # run id of every frame, to take the max posterior over each run
    run_id = torch.cumsum(new_run.long(), dim=1) - 1
    probs = best_lp.exp() * valid
    out: List[Hypothesis] = []
    for b in range(B):
        n_runs = int(new_run[b].sum())
        run_max = torch.zeros(max(n_runs, 1), device=log_probs.device, dtype=probs.dtype)
        n = int(lengths[b])
        run_max = run_max.scatter_reduce(0, run_id[b, :n].clamp(min=0), probs[b, :n], reduce="amax")
        keep = emitted[b, :n]
        tokens = best[b, :n][keep].tolist()
        conf = float(run_max[run_id[b, :n][keep]].mean()) if tokens else 0.0
        out.append(Hypothesis(tokens, conf))
    return out
