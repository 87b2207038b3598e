"""The CTC loss of an SER model's auxiliary recognizer, with its reduction stated.

``log_probs (B, T, V)`` (log-softmax, blank = 0), ``targets (B, L)`` (zero-padded token ids), frame counts
``(B,)`` and token counts ``(B,)`` -> a scalar. ``reduction``:

- ``token``: each utterance's CTC loss divided by its number of tokens, then the mean over the batch (torch's
  and SpeechBrain's ``mean``): a per-token negative log-likelihood that does not grow with the transcript's
  length. Once the recognizer has learned the blank it is a few nats or less, the scale of an utterance's
  cross-entropy, so a weighted sum such as CmGI's ``0.1 L_ASR + 0.9 L_E`` (paper 001, eq. 2) or paper 002's
  ``λ_k`` weighs terms of comparable size, which is what printed weights mean; paper 002 is built on
  SpeechBrain, whose CTC loss reduces this way by default. (Untrained, every reduction is dominated by the
  frames: about ``T log V`` per utterance.)
- ``utterance``: each utterance's loss summed over its tokens, then the mean over the batch: a sentence's
  CTC loss is tens of times its cross-entropy even when trained, so the printed weights lose their meaning.
  Kept for experiments trained with it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CTC_REDUCTIONS = ("token", "utterance")


def ctc_loss(log_probs: torch.Tensor, targets: torch.Tensor, input_lengths: torch.Tensor,
             target_lengths: torch.Tensor, reduction: str = "token") -> torch.Tensor:
    """See the module docstring; infeasible alignments count 0 (``zero_infinity``)."""
    if reduction not in CTC_REDUCTIONS:
        raise ValueError(f"CTC reduction '{reduction}' (one of {', '.join(CTC_REDUCTIONS)})")
    per_utt = F.ctc_loss(log_probs.transpose(0, 1).float(), targets, input_lengths, target_lengths, blank=0,
                         reduction="none", zero_infinity=True)
    if reduction == "token":
        per_utt = per_utt / target_lengths.clamp(min=1).to(per_utt.dtype)
    return per_utt.mean()
