"""SAILER's audio mixing (paper 004, sec. 2.3, Fig. 3): a majority-class utterance mixed with a minority-class one.

For each training utterance of a majority class, with probability ``p_a``: a minority class is drawn by
the inverse of the training set's empirical class frequencies (rarer classes more often), then an
utterance of that class uniformly; a coin decides the order of the two and another whether a silence
separates them or they overlap; the silence or overlap lasts ``t ~ U[0, max_seconds]`` (the paper: 0-2 s).
The mixture's label distribution is ``d_mix = (d_maj + d_min) / 2``.

:func:`mix_waveforms` joins two waveforms: with a gap ``g >= 0`` samples, ``a | zeros(g) | b``; with an
overlap (``g < 0``) of ``o = min(-g, len(a), len(b))`` samples, the end of ``a`` and the start of ``b`` are
summed. The result has ``len(a) + len(b) + g`` samples (``len(a) + len(b) - o`` for an overlap).
On an encoder's stored states (stage 3's ``ssl_frames``) the mixture's states are those of the two utterances
joined the same way (:func:`mix_frames`, the gap in frames of 20 ms), not the states of the mixed audio
(which the encoder never saw): a departure from the paper, the price of running the encoder once.
A mixture longer than ``mix_cap_seconds`` (SAILER's 15-s input cap; 0 = none) is cut to its central part
(:func:`cap_center`), so that both utterances stay in it. Batches are budgeted by each epoch's mixed lengths
(:meth:`speechser.data.ser_dataset.FeatsLabelDataset.epoch_lengths`), not by the longest possible mixture.
The "primary" label of an utterance (which classes are majority ones) is its hard label (``utt2emo``), and
the class frequencies are those of the hard labels. The dataset (:class:`speechser.data.ser_dataset.FeatsLabelDataset`)
gives a mixture the mean of the two utterances' secondary-emotion and attribute targets, both transcripts in
the mixing order, the majority utterance's metadata (gender, speaker) and speaker CMVN.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np


def mix_waveforms(a: np.ndarray, b: np.ndarray, gap: int) -> np.ndarray:
    """``a (S_a,)``, ``b (S_b,)`` and a gap in samples (negative = overlap) -> the joined waveform."""
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    if gap >= 0:
        return np.concatenate([a, np.zeros(gap, dtype=np.float32), b])
    o = min(-gap, len(a), len(b))
    if o == 0:
        return np.concatenate([a, b])
    return np.concatenate([a[: len(a) - o], a[len(a) - o :] + b[:o], b[o:]])


def mixed_length(n_a: int, n_b: int, gap: int) -> int:
    """The length of :func:`mix_waveforms` / :func:`mix_frames` of lengths ``n_a``, ``n_b`` and ``gap``."""
    return n_a + n_b + gap if gap >= 0 else n_a + n_b - min(-gap, n_a, n_b)


def cap_center(x: np.ndarray, cap: int) -> np.ndarray:
    """``x`` (samples or frames on axis 0) cut to its central ``cap`` (``cap`` 0 or ``len(x) <= cap``: whole):
    SAILER's input cap applied to a mixture keeps the join, so both utterances stay in it."""
    if cap <= 0 or len(x) <= cap:
        return x
    start = (len(x) - cap) // 2
    return x[start : start + cap]


def mix_frames(a: np.ndarray, b: np.ndarray, gap: int) -> np.ndarray:
    """An encoder's stored states ``a (T_a, D)``, ``b (T_b, D)`` and a gap in frames (negative = overlap) ->
    ``a | zeros(gap, D) | b``, or with an overlap of ``o = min(-gap, T_a, T_b)`` frames the end of ``a`` and the
    start of ``b`` averaged. The states of the mixed audio are not stored, so they are approximated from each
    utterance's own (zero = the speaker's mean after per-speaker CMVN, the stand-in for silence)."""
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    if gap >= 0:
        return np.concatenate([a, np.zeros((gap, a.shape[1]), dtype=np.float32), b])
    o = min(-gap, len(a), len(b))
    if o == 0:
        return np.concatenate([a, b])
    return np.concatenate([a[: len(a) - o], (a[len(a) - o :] + b[:o]) / 2, b[o:]])


@dataclass
class MixDraw:
    """One mixing decision: the partner's index, whether it goes first, and the gap in samples (< 0: overlap)."""

    partner: int
    partner_first: bool
    gap: int


class MinorityMixer:
    """Draws the partner of each majority-class utterance (see the module docstring).

    ``labels (N,)``: the training utterances' hard labels; ``majority``: the class indices that count as
    majority classes; ``num_classes``. The draws are seeded by ``seed``, the epoch (:meth:`set_epoch`) and
    the utterance key, so they are reproducible and differ between epochs."""

    def __init__(self, labels: Sequence[int], majority: Sequence[int], num_classes: int, prob: float,
                 max_seconds: float, rate: int, seed: int = 0) -> None:
        self.labels = np.asarray(labels)
        self.majority = set(int(c) for c in majority)
        self.prob, self.max_gap = float(prob), int(round(max_seconds * rate))
        self.seed, self.epoch = int(seed) % (1 << 32), 0
        counts = np.bincount(self.labels, minlength=num_classes).astype(np.float64)
        minority = [c for c in range(num_classes) if c not in self.majority and counts[c] > 0]
        #: Utterance indices of each minority class that has training utterances.
        self.pools: List[np.ndarray] = [np.flatnonzero(self.labels == c) for c in minority]
        self.minority = minority
        inv = np.array([1.0 / counts[c] for c in minority])
        #: The probability of drawing each minority class: the inverse empirical frequency, normalized.
        self.class_prob = inv / inv.sum() if len(minority) else inv

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def draw(self, index: int, key: str, epoch: Optional[int] = None) -> Optional[MixDraw]:
        """The mixing decision for training utterance ``index`` (``key``) in ``epoch`` (default: the one set),
        or None (not mixed)."""
        if self.prob <= 0 or not self.pools or int(self.labels[index]) not in self.majority:
            return None
        g = np.random.default_rng([self.seed, self.epoch if epoch is None else int(epoch),
                                   zlib.crc32(key.encode("utf-8")), 7])
        if g.random() >= self.prob:
            return None
        pool = self.pools[int(g.choice(len(self.pools), p=self.class_prob))]
        partner = int(pool[int(g.integers(len(pool)))])
        partner_first = bool(g.random() < 0.5)
        length = int(g.integers(0, self.max_gap + 1))
        gap = length if g.random() < 0.5 else -length
        return MixDraw(partner, partner_first, gap)
