"""RNN-T decoding: batched greedy search."""

from __future__ import annotations

from typing import List

import torch

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
