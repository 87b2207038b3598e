"""CTC decoding: batched greedy search with per-utterance confidence, and prefix beam search."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Dict, List, Tuple

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


NEG = float("-inf")


def log_add(a: float, b: float) -> float:
    """``log(exp(a) + exp(b))`` for plain floats, exact at ``-inf``."""
    if a == NEG:
        return b
    if b == NEG:
        return a
    m = max(a, b)
    return m + math.log(math.exp(a - m) + math.exp(b - m))


def ctc_prefix_beam_search(
    log_probs: torch.Tensor, length: int, beam: int = 10, blank: int = 0, token_prune: int = 0
) -> List[Tuple[List[int], float]]:
    """CTC prefix beam search over one utterance's ``log_probs (T, V)``.

    Each prefix keeps two log scores: ending in blank and ending in a
    non-blank; a repeated token extends a prefix only after a blank. Returns
    up to ``beam`` ``(tokens, log_prob)`` pairs, best first. ``token_prune > 0``
    considers only that many most likely tokens per frame.
    """
    lp = log_probs[:length].double().cpu()
    beams: Dict[Tuple[int, ...], Tuple[float, float]] = {(): (0.0, NEG)}
    for t in range(lp.shape[0]):
        row = lp[t]
        cands = torch.topk(row, token_prune).indices.tolist() if 0 < token_prune < row.shape[0] else range(row.shape[0])
        nxt: Dict[Tuple[int, ...], Tuple[float, float]] = defaultdict(lambda: (NEG, NEG))
        for prefix, (pb, pnb) in beams.items():
            total = log_add(pb, pnb)
            for k in cands:
                p = float(row[k])
                if k == blank:
                    b, nb = nxt[prefix]
                    nxt[prefix] = (log_add(b, total + p), nb)
                    continue
                ext = prefix + (k,)
                b, nb = nxt[ext]
                if prefix and prefix[-1] == k:
                    nxt[ext] = (b, log_add(nb, pb + p))  # a repeat needs a blank in between
                    sb, snb = nxt[prefix]
                    nxt[prefix] = (sb, log_add(snb, pnb + p))  # the repeat collapses into the prefix
                else:
                    nxt[ext] = (b, log_add(nb, total + p))
        alive = [(p, sc) for p, sc in nxt.items() if log_add(*sc) > NEG]  # drop impossible prefixes
        beams = dict(sorted(alive, key=lambda kv: -log_add(*kv[1]))[:beam])
    return [(list(p), log_add(*s)) for p, s in sorted(beams.items(), key=lambda kv: -log_add(*kv[1]))]
