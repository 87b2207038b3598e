"""Fixed-length segments of a waveform batch and PCQ's spectrogram front-end (paper 003, sec. 3.2).

- :func:`segment_waveforms`: each utterance is cut into consecutive segments of ``segment`` samples (3 s
  at 16 kHz in the paper), the last one zero-padded; an utterance shorter than one segment gives one
  zero-padded segment. ``wavs (B, S)``, ``lengths (B,)`` -> ``segments (N, segment)``, ``owner (N,)``
  (the utterance index of each segment, non-decreasing).
- :func:`average_segment_posteriors`: the utterance decision from its segments (the paper: "the final
  prediction is based on the judgement of all the segments", rule not given). Ours: the mean of the
  segments' posteriors, ``p(c | u) = 1/|S_u| Σ_{s ∈ S_u} softmax(z_s)_c``, returned as log-probabilities.
- :class:`SegmentSpectrogram`: 40 ms Hamming windows (640 samples at 16 kHz), each an 800-point DFT, the
  first 200 bins (0-4 kHz at 20 Hz spacing), as log power ``log(|X|² + 1e-6)``; a hop of 10 ms (not printed;
  it is what gives the paper's 300 x 200 image for 3 s). ``(N, S)`` -> ``(N, 1, S // hop, 200)`` (time, freq).
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import nn


def segment_waveforms(wavs: torch.Tensor, lengths: torch.Tensor, segment: int
                      ) -> Tuple[torch.Tensor, torch.Tensor]:
    """``wavs (B, S)``, ``lengths (B,)`` -> ``segments (N, segment)`` (zero-padded), ``owner (N,)``."""
    if segment <= 0:
        raise ValueError(f"segment length must be > 0 samples, got {segment}")
    segs, owner = [], []
    for b, n in enumerate(lengths.tolist()):
        wav = wavs[b, : max(int(n), 1)]
        count = max(1, -(-wav.shape[0] // segment))
        padded = torch.nn.functional.pad(wav, (0, count * segment - wav.shape[0]))
        segs.append(padded.view(count, segment))
        owner.extend([b] * count)
    return torch.cat(segs), torch.tensor(owner, device=wavs.device, dtype=torch.long)


def segment_frames(frames: torch.Tensor, owner: torch.Tensor, segment: int) -> torch.Tensor:
    """Utterance frames ``(B, T, D)`` (an encoder's stored states) -> the frames of each segment
    :func:`segment_waveforms` cut, ``(N, segment, D)``: segment ``n`` of utterance ``b`` is frames
    ``[n segment, (n + 1) segment)`` of ``b``, zero-padded past its end; ``owner (N,)`` as that function gives."""
    if segment <= 0:
        raise ValueError(f"segment length must be > 0 frames, got {segment}")
    out = frames.new_zeros(owner.shape[0], segment, frames.shape[-1])
    seen: dict = {}
    for i, b in enumerate(owner.tolist()):
        n = seen.get(b, 0)
        seen[b] = n + 1
        part = frames[b, n * segment : (n + 1) * segment]
        out[i, : part.shape[0]] = part
    return out


def average_segments(x: torch.Tensor, owner: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Segment vectors ``(N, D)`` -> their mean per utterance ``(B, D)``."""
    total = torch.zeros(batch_size, x.shape[1], device=x.device, dtype=x.dtype).index_add_(0, owner, x)
    return total / torch.bincount(owner, minlength=batch_size).clamp(min=1).to(x.dtype)[:, None]


def average_segment_posteriors(logits: torch.Tensor, owner: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Segment logits ``(N, C)`` and owners ``(N,)`` -> utterance log mean posteriors ``(B, C)``."""
    post = average_segments(torch.softmax(logits.float(), dim=-1), owner, batch_size)
    return torch.log(post.clamp(min=1e-12))


class SegmentSpectrogram(nn.Module):
    """``(N, S)`` waveforms -> ``(N, 1, S // hop, num_bins)`` log-power spectrogram (time, frequency)."""

    def __init__(self, sample_rate: int = 16000, window_ms: float = 40.0, hop_ms: float = 10.0, n_fft: int = 800,
                 num_bins: int = 200) -> None:
        super().__init__()
        self.win = int(round(sample_rate * window_ms / 1000))
        self.hop = int(round(sample_rate * hop_ms / 1000))
        if self.win > n_fft:
            raise ValueError(f"a {window_ms} ms window is {self.win} samples, more than the {n_fft}-point DFT")
        if num_bins > n_fft // 2 + 1:
            raise ValueError(f"{num_bins} bins asked from a {n_fft}-point DFT ({n_fft // 2 + 1} available)")
        self.n_fft, self.num_bins = n_fft, num_bins
        self.register_buffer("window", torch.hamming_window(self.win, periodic=False), persistent=False)

    def forward(self, wavs: torch.Tensor) -> torch.Tensor:
        frames = wavs.shape[1] // self.hop
        with torch.autocast(device_type=wavs.device.type, enabled=False):
            spec = torch.stft(wavs.float(), self.n_fft, hop_length=self.hop, win_length=self.win,
                              window=self.window, center=True, return_complex=True)
            power = spec[:, : self.num_bins, :frames].abs().pow(2)
            return torch.log(power + 1e-6).transpose(1, 2).unsqueeze(1)
