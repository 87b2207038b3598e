"""RNN-T prediction and joint networks.

Token id 0 is the blank; the prediction network starts from it (as the
start-of-sequence symbol). Shapes: targets ``(B, U)`` -> predictor output
``(B, U + 1, P)``; joint of encoder ``(B, T, E)`` and predictor ``(B, U + 1, P)``
-> logits ``(B, T, U + 1, V)``.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import nn


class LSTMPredictor(nn.Module):
    """Embedding + LSTM over ``[blank] + targets``."""

    def __init__(self, vocab_size: int, embed_dim: int, hidden: int, num_layers: int = 1, dropout: float = 0.1,
                 blank: int = 0) -> None:
        super().__init__()
        self.blank = blank
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden, num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.output_dim = hidden

    def forward(self, targets: torch.Tensor) -> torch.Tensor:
        """``(B, U)`` (padding values are ignored by the loss) -> ``(B, U + 1, hidden)``."""
        start = torch.full((targets.shape[0], 1), self.blank, dtype=targets.dtype, device=targets.device)
        y, _ = self.lstm(self.dropout(self.embed(torch.cat([start, targets], dim=1))))
        return y

    def step(
        self, tokens: torch.Tensor, state: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
    ) -> Tuple[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        """One step for decoding: ``tokens (B,)`` -> ``(B, hidden)`` and the new LSTM state."""
        y, state = self.lstm(self.embed(tokens).unsqueeze(1), state)
        return y[:, 0], state


class JointNetwork(nn.Module):
    """``tanh(W_e e_t + W_p p_u)`` -> vocabulary logits."""

    def __init__(self, enc_dim: int, pred_dim: int, joint_dim: int, vocab_size: int) -> None:
        super().__init__()
        self.enc = nn.Linear(enc_dim, joint_dim)
        self.pred = nn.Linear(pred_dim, joint_dim, bias=False)
        self.out = nn.Linear(joint_dim, vocab_size)

    def forward(self, enc: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        """``(B, T, E)``, ``(B, U+1, P)`` -> ``(B, T, U+1, V)``; also works on ``(B, E)``, ``(B, P)`` -> ``(B, V)``."""
        if enc.dim() == 3:
            return self.out(torch.tanh(self.enc(enc).unsqueeze(2) + self.pred(pred).unsqueeze(1)))
        return self.out(torch.tanh(self.enc(enc) + self.pred(pred)))
