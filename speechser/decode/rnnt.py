"""RNN-T decoding: batched greedy search and time-synchronous beam search."""

from __future__ import annotations

from typing import Dict, List, Tuple

import torch

from speechser.decode.ctc import NEG, log_add
from speechser.nets.transducer import JointNetwork, LSTMPredictor


@torch.no_grad()
def rnnt_greedy_search(
    enc: torch.Tensor,
    enc_lens: torch.Tensor,
    predictor: LSTMPredictor,
    joint: JointNetwork,
    max_symbols_per_frame: int = 5,
    blank: int = 0,
) -> List[List[int]]:
    """``enc (B, T, E)``, ``enc_lens (B,)`` -> token lists.

    All utterances advance frame by frame together. At each frame every
    utterance may emit up to ``max_symbols_per_frame`` tokens; the prediction
    network is stepped (for the whole batch at once) only for the utterances
    that emitted, the others keep their state.
    """
    B, T, _ = enc.shape
    device = enc.device
    tokens = torch.full((B,), blank, dtype=torch.long, device=device)
    pred_out, state = predictor.step(tokens)
    hyps: List[List[int]] = [[] for _ in range(B)]
    for t in range(T):
        active = enc_lens > t
        frame = enc[:, t]
        for _ in range(max_symbols_per_frame):
            if not bool(active.any()):
                break
            best = joint(frame, pred_out).argmax(-1)  # (B,)
            emit = active & (best != blank)
            if not bool(emit.any()):
                break
            for b in emit.nonzero().flatten().tolist():
                hyps[b].append(int(best[b]))
            new_out, new_state = predictor.step(best.masked_fill(~emit, blank), state)
            m = emit[:, None].to(new_out.dtype)
            pred_out = m * new_out + (1 - m) * pred_out
            state = tuple(emit[None, :, None].to(s.dtype) * ns + (1 - emit[None, :, None].to(s.dtype)) * s
                          for s, ns in zip(state, new_state))  # type: ignore[assignment]
            active = emit
    return hyps


@torch.no_grad()
def rnnt_beam_search(
    enc: torch.Tensor,
    length: int,
    predictor: LSTMPredictor,
    joint: JointNetwork,
    beam: int = 4,
    blank: int = 0,
) -> List[Tuple[List[int], float]]:
    """Time-synchronous RNN-T beam search emitting at most one token per frame, for one
    utterance's ``enc (T, E)``; returns up to ``beam`` ``(tokens, log_prob)``, best first.

    At every frame each hypothesis is extended by blank (same tokens) or by one of
    its ``beam`` most likely non-blank tokens; hypotheses with equal token
    sequences are merged by adding their probabilities, and the ``beam`` best are
    kept. The prediction network runs once per frame for all new hypotheses.
    (The one-token-per-frame restriction is the usual "modified" beam search; it
    suits encoders whose frames outnumber the tokens: 40 ms frames with graphemes, FastConformer's 80 ms frames
    with word pieces.)
    """
    device = enc.device
    start = torch.full((1,), blank, dtype=torch.long, device=device)
    out0, state0 = predictor.step(start)
    # hypothesis: tokens -> (log_prob, predictor output (P,), state (h, c) each (L, 1, H))
    hyps: Dict[Tuple[int, ...], Tuple[float, torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]] = {
        (): (0.0, out0[0], state0)
    }
    for t in range(length):
        keys = list(hyps)
        pred = torch.stack([hyps[k][1] for k in keys])  # (N, P)
        logp = torch.log_softmax(joint(enc[t].expand(len(keys), -1), pred).float(), dim=-1)  # (N, V)
        base = torch.tensor([hyps[k][0] for k in keys], device=device)
        cands: Dict[Tuple[int, ...], float] = {}
        extend: List[Tuple[int, int, Tuple[int, ...]]] = []  # (hyp index, token, new tokens)
        for i, k in enumerate(keys):
            cands[k] = log_add(cands.get(k, NEG), float(base[i] + logp[i, blank]))
            nb = logp[i].clone()
            nb[blank] = float("-inf")
            top = torch.topk(nb, min(beam, nb.shape[0] - 1))
            for lp, tok in zip(top.values.tolist(), top.indices.tolist()):
                new = k + (tok,)
                score = float(base[i]) + lp
                cands[new] = log_add(cands.get(new, NEG), score)
                extend.append((i, tok, new))
        best = sorted(cands.items(), key=lambda kv: -kv[1])[:beam]
        kept = {k for k, _ in best}
        # step the predictor for the kept extended hypotheses, in one batch
        todo = {new: (i, tok) for i, tok, new in extend if new in kept and new not in hyps}
        new_out: Dict[Tuple[int, ...], Tuple[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]] = {}
        if todo:
            items = list(todo.items())
            toks = torch.tensor([tok for _, (_, tok) in items], device=device)
            h = torch.cat([hyps[keys[i]][2][0] for _, (i, _) in items], dim=1)
            c = torch.cat([hyps[keys[i]][2][1] for _, (i, _) in items], dim=1)
            outs, (h2, c2) = predictor.step(toks, (h, c))
            for j, (new, _) in enumerate(items):
                new_out[new] = (outs[j], (h2[:, j : j + 1], c2[:, j : j + 1]))
        nxt = {}
        for k, score in best:
            if k in hyps:
                nxt[k] = (score, hyps[k][1], hyps[k][2])
            else:
                out, st = new_out[k]
                nxt[k] = (score, out, st)
        hyps = nxt
    ranked = sorted(hyps.items(), key=lambda kv: -kv[1][0])
    return [(list(k), v[0]) for k, v in ranked]
