"""Log-Mel filterbank features (Kaldi-compatible) and CMVN statistics.

Features are the output of ``torchaudio.compliance.kaldi.fbank`` with the
settings of :class:`FbankOptions` (by default 128 bins, 25 ms window, 10 ms
shift, no dither so that extraction is deterministic).

CMVN statistics use Kaldi's layout: a ``(2, D + 1)`` float64 matrix whose
first row holds the per-dimension sums and the frame count in its last
column, and whose second row holds the sums of squares.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable

import numpy as np
import torch
import torchaudio.compliance.kaldi as kaldi

from speechser.config import check_ranges


@dataclass(frozen=True)
class FbankOptions:
    num_mel_bins: int = 128
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    sample_rate: int = 16000
    dither: float = 0.0

    def __post_init__(self) -> None:
        # Kaldi's fbank needs at least 3 mel bins (triangles between neighbours)
        check_ranges(self, num_mel_bins="[3, inf)", frame_length_ms="(0, inf)", frame_shift_ms="(0, inf)",
                     sample_rate="(0, inf)", dither="[0, inf)")


def compute_fbank(samples: np.ndarray, rate: int, opts: FbankOptions = FbankOptions()) -> np.ndarray:
    """Samples ``(T,)`` float in [-1, 1] -> log-Mel features ``(frames, num_mel_bins)`` float32.

    The waveform is scaled to the 16-bit integer range first, as Kaldi reads it.
    """
    if rate != opts.sample_rate:
        raise ValueError(f"audio at {rate} Hz, fbank expects {opts.sample_rate} Hz (format the audio first)")
    return fbank_torch(torch.from_numpy(np.asarray(samples, dtype=np.float32)), opts).numpy().astype(np.float32)


def fbank_torch(samples: torch.Tensor, opts: FbankOptions = FbankOptions()) -> torch.Tensor:
    """:func:`compute_fbank` on a tensor ``(T,)`` at ``opts.sample_rate`` (any device) -> ``(frames, bins)``."""
    feats = kaldi.fbank(
        (samples.float() * 32768.0).unsqueeze(0),
        num_mel_bins=opts.num_mel_bins,
        frame_length=opts.frame_length_ms,
        frame_shift=opts.frame_shift_ms,
        dither=opts.dither,
        sample_frequency=float(opts.sample_rate),
        energy_floor=0.0,
    )
    return feats


def accumulate_cmvn(feats: Iterable[np.ndarray]) -> np.ndarray:
    """Kaldi-layout CMVN statistics ``(2, D + 1)`` over matrices of shape ``(T, D)``."""
    stats = None
    for mat in feats:
        mat = np.asarray(mat, dtype=np.float64)
        if stats is None:
            stats = np.zeros((2, mat.shape[1] + 1), dtype=np.float64)
        stats[0, :-1] += mat.sum(axis=0)
        stats[1, :-1] += (mat**2).sum(axis=0)
        stats[0, -1] += mat.shape[0]
    if stats is None:
        raise ValueError("no features to accumulate CMVN statistics over")
    return stats


def cmvn_mean_std(stats: np.ndarray, floor: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation ``(D,)`` from Kaldi-layout statistics."""
    count = stats[0, -1]
    if count <= 0:
        raise ValueError("CMVN statistics with zero frames")
    mean = stats[0, :-1] / count
    var = np.maximum(stats[1, :-1] / count - mean**2, floor)
    return mean.astype(np.float32), np.sqrt(var).astype(np.float32)


class CMVN:
    """Apply mean and variance normalization from global or per-speaker statistics.

    ``stats`` maps a key to Kaldi-layout statistics: the key ``"global"`` for
    global CMVN, or speaker ids for per-speaker CMVN (Kaldi's
    ``compute-cmvn-stats --spk2utt``). Per-speaker normalization uses no
    labels; it needs all of a speaker's audio before that speaker is decoded.
    """

    def __init__(self, stats: Dict[str, np.ndarray], utt2spk: Dict[str, str] | None = None) -> None:
        self.table = {k: cmvn_mean_std(v) for k, v in stats.items()}
        self.utt2spk = utt2spk
        if utt2spk is None and "global" not in self.table:
            raise ValueError("per-speaker CMVN statistics need utt2spk")

    def __call__(self, utt: str, feats: np.ndarray) -> np.ndarray:
        """``(T, D)`` -> ``(T, D)`` normalized."""
        key = "global" if self.utt2spk is None else self.utt2spk[utt]
        if key not in self.table:
            raise KeyError(f"no CMVN statistics for '{key}' (utterance '{utt}')")
        mean, std = self.table[key]
        return (feats - mean) / std
