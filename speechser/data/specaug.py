"""SpecAugment on padded feature batches (frequency and time masking)."""

from __future__ import annotations

import torch
from torch import nn


class SpecAugment(nn.Module):
    """Frequency masks and time masks, applied only in training mode.

    Frequency masks: ``num_freq_masks`` bands of width uniform in
    ``[0, freq_width]``. Time masks: ``num_time_masks`` spans whose width is
    uniform in ``[0, time_width_ratio * length]``, so that they scale with
    each utterance's length; with ``adaptive_num_time_masks`` the count is
    ``max(1, int(time_mask_count_ratio * length))`` instead (capped at
    ``num_time_masks`` when that is positive). Masked values are zero, which is
    the mean after CMVN. Padding beyond each length is left untouched.
    """

    def __init__(
        self,
        num_freq_masks: int = 2,
        freq_width: int = 27,
        num_time_masks: int = 2,
        time_width_ratio: float = 0.05,
        adaptive_num_time_masks: bool = False,
        time_mask_count_ratio: float = 0.04,
    ) -> None:
        super().__init__()
        self.num_freq_masks = num_freq_masks
        self.freq_width = freq_width
        self.num_time_masks = num_time_masks
        self.time_width_ratio = time_width_ratio
        self.adaptive = adaptive_num_time_masks
        self.count_ratio = time_mask_count_ratio

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``(B, T, D)`` and ``(B,)`` -> ``(B, T, D)``."""
        if not self.training:
            return feats
        B, T, D = feats.shape
        device = feats.device
        keep = torch.ones(B, T, D, dtype=torch.bool, device=device)
        freq = torch.arange(D, device=device)
        for _ in range(self.num_freq_masks):
            width = torch.randint(0, self.freq_width + 1, (B, 1), device=device)
            start = (torch.rand(B, 1, device=device) * (D - width).clamp(min=1)).long()
            band = (freq >= start) & (freq < start + width)  # (B, D)
            keep &= ~band.unsqueeze(1)
        time = torch.arange(T, device=device)
        lens = lengths.to(device)
        if self.adaptive:
            counts = (self.count_ratio * lens.float()).long().clamp(min=1)
            if self.num_time_masks > 0:
                counts = counts.clamp(max=self.num_time_masks)
            n_masks = int(counts.max().item()) if B else 0
        else:
            counts = torch.full((B,), self.num_time_masks, device=device)
            n_masks = self.num_time_masks
        max_width = (self.time_width_ratio * lens.float()).long()
        for m in range(n_masks):
            width = (torch.rand(B, device=device) * (max_width + 1).float()).long()
            start = (torch.rand(B, device=device) * (lens - width).clamp(min=1).float()).long()
            span = (time >= start[:, None]) & (time < (start + width)[:, None])  # (B, T)
            span &= (m < counts)[:, None]
            keep &= ~span.unsqueeze(2)
        return feats * keep.to(feats.dtype)
