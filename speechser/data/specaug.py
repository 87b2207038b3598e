"""SpecAugment on padded feature batches (frequency and time masking)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class SpecAugConfig:
    """The options of :class:`SpecAugment` (its defaults), for model configs."""

    num_freq_masks: int = 2
    freq_width: int = 27
    num_time_masks: int = 2
    time_width_ratio: float = 0.05
    adaptive_num_time_masks: bool = False
    time_mask_count_ratio: float = 0.04


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


class FreqWarp(nn.Module):
    """Random warping of the frequency axis (vocal-tract-length-like perturbation on filterbanks).

    Each utterance gets a factor ``alpha ~ U(1 - max_warp, 1 + max_warp)``;
    output bin ``f`` takes the linearly interpolated input at ``f / alpha``
    (clamped to the last bin), so formants and harmonics move up for
    ``alpha > 1`` and down for ``alpha < 1``, as between speakers. Training mode only.
    ``(B, T, D)`` -> ``(B, T, D)``.
    """

    def __init__(self, max_warp: float = 0.1) -> None:
        super().__init__()
        if not 0 <= max_warp < 1:
            raise ValueError("max_warp must be in [0, 1)")
        self.max_warp = max_warp

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        if not self.training or self.max_warp == 0:
            return feats
        B, T, D = feats.shape
        alpha = 1 + (2 * torch.rand(B, 1, device=feats.device) - 1) * self.max_warp
        pos = (torch.arange(D, device=feats.device, dtype=feats.dtype)[None] / alpha).clamp(max=D - 1)  # (B, D)
        lo = pos.floor().long()
        hi = (lo + 1).clamp(max=D - 1)
        frac = (pos - lo.to(pos.dtype)).unsqueeze(1)  # (B, 1, D)
        lo_v = torch.gather(feats, 2, lo.unsqueeze(1).expand(B, T, D))
        hi_v = torch.gather(feats, 2, hi.unsqueeze(1).expand(B, T, D))
        return lo_v + frac * (hi_v - lo_v)


class TimeStretch(nn.Module):
    """Random tempo change of feature sequences by linear interpolation along time.

    Each utterance gets a rate ``r ~ U(1 - max_stretch, 1 + max_stretch)``;
    its new length is ``round(length / r)`` and output frame ``t`` takes the
    input at ``t * r``. Training mode only. ``(B, T, D)``, ``(B,)`` ->
    ``(B, T', D)``, ``(B,)`` (zero padding beyond each new length).
    """

    def __init__(self, max_stretch: float = 0.1) -> None:
        super().__init__()
        if not 0 <= max_stretch < 1:
            raise ValueError("max_stretch must be in [0, 1)")
        self.max_stretch = max_stretch

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.training or self.max_stretch == 0:
            return feats, lengths
        B, T, D = feats.shape
        device = feats.device
        rate = 1 + (2 * torch.rand(B, device=device) - 1) * self.max_stretch
        new_lengths = (lengths.to(device).float() / rate).round().long().clamp(min=1)
        T_new = int(new_lengths.max().item())
        t = torch.arange(T_new, device=device, dtype=feats.dtype)[None] * rate[:, None].to(feats.dtype)  # (B, T')
        last = (lengths.to(device) - 1).clamp(min=0)[:, None].to(feats.dtype)
        pos = torch.minimum(t, last)
        lo = pos.floor().long()
        hi = torch.minimum(lo + 1, last.long())
        frac = (pos - lo.to(pos.dtype)).unsqueeze(-1)
        lo_v = torch.gather(feats, 1, lo.unsqueeze(-1).expand(B, T_new, D))
        hi_v = torch.gather(feats, 1, hi.unsqueeze(-1).expand(B, T_new, D))
        out = lo_v + frac * (hi_v - lo_v)
        valid = torch.arange(T_new, device=device)[None] < new_lengths[:, None]
        return out * valid.unsqueeze(-1).to(out.dtype), new_lengths
