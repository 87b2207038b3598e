"""On-the-fly waveform augmentation of training utterances.

Four transforms, each a config switch with its own probability and range, applied
in this order to a mono waveform ``(S,)`` float32 at ``rate`` Hz:

1. **speed** perturbation (Kaldi/ESPnet, sox ``speed``): factor ``f`` drawn from a
   list; the audio plays ``f`` times faster, so tempo *and* pitch change and the
   length becomes ``round(S / f)`` (:func:`speechser.io.audio.speed_perturb`).
2. **pitch** shift by ``n`` semitones drawn uniformly in a range, length kept:
   :func:`pitch_shift`.
3. **reverb**eration: convolution with a room impulse response drawn from a list
   (a Kaldi ``wav.scp``), normalized to unit energy, output aligned to the RIR's
   direct-path peak and kept at the input length: :func:`reverberate`.
4. additive **noise** from a list of noise recordings (a Kaldi ``wav.scp``) at an
   SNR drawn uniformly in a range: :func:`add_noise`. The SNR is measured against
   the signal as it is at that point (after reverberation).

Pitch shift comes before reverberation and noise (a different voice in the same
room), noise last (recorded by the same microphone as the reverberant speech).

Draws are reproducible: utterance ``key`` in epoch ``e`` of a run with seed ``s``
gets, for each transform ``t``, its own generator
``numpy.random.default_rng([s, e, crc32(key), t])``; whether ``t`` applies
(``u < prob``) is that generator's first draw and its parameters the next ones. So
the same (seed, epoch, utterance) always gives the same output, another epoch a
new draw, and changing one transform's probability leaves the others' draws alone.
Decoding and validation data are never augmented: only the training datasets get
a :class:`WaveformAugmentor` (see ``speechser/train/{asr,ser}.py``).

The config (:class:`AugmentConfig`) is the ``data.augment`` section of the ASR and
SER training configs; unknown keys are errors (:func:`speechser.config.from_dict`).
A transform with a probability above 0 that needs a list (noise, reverb) and has
none is a config error, not a silent no-op.
"""

from __future__ import annotations

import logging
import math
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, List, Mapping, Optional, Tuple

import numpy as np
import soundfile

from speechser.config import from_dict
from speechser.io.audio import AudioError, read_audio_source, resample, speed_perturb
from speechser.io.datadir import read_kv


def _check_prob(p: float, name: str) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name}.prob must be in [0, 1], got {p}")


def _check_range(r: List[float], name: str) -> None:
    if len(r) != 2 or r[0] > r[1]:
        raise ValueError(f"{name} must be a range [low, high] with low <= high, got {r}")


@dataclass
class SpeedAugConfig:
    #: Probability that an utterance is speed-perturbed.
    prob: float = 0.0
    #: Factors drawn uniformly; ``f`` plays the audio ``f`` times faster (length / f, frequencies x f).
    factors: List[float] = field(default_factory=lambda: [0.9, 1.0, 1.1])

    def __post_init__(self) -> None:
        _check_prob(self.prob, "speed")
        if not self.factors or any(f <= 0 for f in self.factors):
            raise ValueError(f"speed.factors must be a non-empty list of positive factors, got {self.factors}")


@dataclass
class PitchAugConfig:
    #: Probability that an utterance is pitch-shifted.
    prob: float = 0.0
    #: Shift in semitones, uniform in ``[low, high]`` (length unchanged).
    semitones: List[float] = field(default_factory=lambda: [-2.0, 2.0])

    def __post_init__(self) -> None:
        _check_prob(self.prob, "pitch")
        _check_range(self.semitones, "pitch.semitones")


@dataclass
class ReverbAugConfig:
    #: Probability that an utterance is convolved with a room impulse response.
    prob: float = 0.0
    #: A Kaldi ``wav.scp`` of room impulse responses (``id path`` or ``id command |``).
    rir_scp: str = ""

    def __post_init__(self) -> None:
        _check_prob(self.prob, "reverb")
        if self.prob > 0 and not self.rir_scp:
            raise ValueError("reverb.prob > 0 needs reverb.rir_scp (a wav.scp of room impulse responses)")


@dataclass
class NoiseAugConfig:
    #: Probability that noise is added to an utterance.
    prob: float = 0.0
    #: A Kaldi ``wav.scp`` of noise recordings (``id path`` or ``id command |``).
    noise_scp: str = ""
    #: Signal-to-noise ratio in dB, uniform in ``[low, high]``.
    snr_db: List[float] = field(default_factory=lambda: [0.0, 15.0])

    def __post_init__(self) -> None:
        _check_prob(self.prob, "noise")
        _check_range(self.snr_db, "noise.snr_db")
        if self.prob > 0 and not self.noise_scp:
            raise ValueError("noise.prob > 0 needs noise.noise_scp (a wav.scp of noise recordings)")


@dataclass
class AugmentConfig:
    """The ``data.augment`` section; every transform is off (probability 0) by default."""

    speed: SpeedAugConfig = field(default_factory=SpeedAugConfig)
    pitch: PitchAugConfig = field(default_factory=PitchAugConfig)
    reverb: ReverbAugConfig = field(default_factory=ReverbAugConfig)
    noise: NoiseAugConfig = field(default_factory=NoiseAugConfig)

    @property
    def enabled(self) -> bool:
        """True when any transform has a probability above 0."""
        return any(getattr(self, t).prob > 0 for t in STAGES)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "augment", source: str = "") -> "AugmentConfig":
        """Build from a mapping; unknown keys and bad values are :class:`~speechser.config.ConfigError`."""
        return from_dict(cls, data, where, source)


#: Transform order; the index is the transform's stream id in the seed sequence.
STAGES: Tuple[str, ...] = ("speed", "pitch", "reverb", "noise")


# --------------------------------------------------------------------------- transforms


def add_noise(wav: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``wav (S,)`` + ``noise (S,)`` scaled to the requested SNR -> ``(S,)`` float32.

    ``SNR = 10 log10(P_signal / P_noise)`` with ``P = mean(x^2)`` over the whole
    utterance; the noise is scaled by ``g = sqrt(P_signal / (P_noise 10^(SNR/10)))``,
    so that the output's SNR is exactly ``snr_db``. A silent signal or a silent noise
    segment leaves ``wav`` unchanged. No clipping (the output may exceed [-1, 1]).
    """
    if noise.shape != wav.shape:
        raise ValueError(f"noise {noise.shape} and signal {wav.shape} differ in shape")
    x = wav.astype(np.float64)
    n = noise.astype(np.float64)
    p_x, p_n = float(np.mean(x * x)), float(np.mean(n * n))
    if p_x <= 0.0 or p_n <= 0.0:
        return wav.astype(np.float32, copy=True)
    g = math.sqrt(p_x / (p_n * 10.0 ** (snr_db / 10.0)))
    return (x + g * n).astype(np.float32)


def _fft_convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Full linear convolution ``(S,) * (K,) -> (S + K - 1,)`` (float64, FFT)."""
    n = x.shape[0] + h.shape[0] - 1
    size = 1 << (n - 1).bit_length()
    return np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(h, size), size)[:n]


def normalize_rir(rir: np.ndarray) -> np.ndarray:
    """A room impulse response ``(K,)`` scaled to unit energy ``sum(h^2) = 1`` (float64)."""
    h = np.asarray(rir, dtype=np.float64)
    energy = float(np.sqrt(np.sum(h * h)))
    if energy <= 0.0:
        raise ValueError("room impulse response is all zeros")
    return h / energy


def reverberate(wav: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """Convolve ``wav (S,)`` with a room impulse response ``rir (K,)`` -> ``(S,)`` float32.

    ``h = rir / ||rir||_2`` (unit energy, so a long reverberant tail does not change
    the level much); ``y = (wav * h)[d : d + S]`` with ``d = argmax |h|``, the
    direct-path peak, so that the output is aligned with the input (no delay) and
    keeps its length. An identity response ``[1, 0, 0, ...]`` returns ``wav``.
    """
    h = normalize_rir(rir)
    d = int(np.argmax(np.abs(h)))
    y = _fft_convolve(wav.astype(np.float64), h)
    return y[d : d + wav.shape[0]].astype(np.float32)


def _fix_length(x: np.ndarray, n: int) -> np.ndarray:
    if x.shape[0] >= n:
        return x[:n]
    return np.concatenate([x, np.zeros(n - x.shape[0], dtype=x.dtype)])


def time_stretch(wav: np.ndarray, rate: int, length: int) -> np.ndarray:
    """Phase-vocoder time stretch of ``wav (S,)`` to ``(length,)`` samples, pitch unchanged.

    STFT with a Hann window of ~32 ms (a power of two, 512 at 16 kHz) and a quarter
    hop, :func:`torchaudio.functional.phase_vocoder` at ``rate_pv = S / length``,
    inverse STFT; the result is cut or zero-padded to exactly ``length``.
    """
    import torch
    import torchaudio.functional as AF

    if wav.shape[0] == length:
        return wav.astype(np.float32, copy=True)
    n_fft = 1 << max(4, int(round(math.log2(0.032 * rate))))
    hop = n_fft // 4
    window = torch.hann_window(n_fft)
    spec = torch.stft(torch.from_numpy(wav.astype(np.float32)), n_fft, hop, window=window, center=True,
                      pad_mode="constant", return_complex=True)
    phase_advance = torch.linspace(0, math.pi * hop, spec.shape[-2])[..., None]
    stretched = AF.phase_vocoder(spec, wav.shape[0] / length, phase_advance)
    y = torch.istft(stretched, n_fft, hop, window=window, center=True)
    return _fix_length(y.numpy().astype(np.float32), length)


def pitch_shift(wav: np.ndarray, rate: int, semitones: float, grid_hz: int = 50) -> np.ndarray:
    """Shift the pitch of ``wav (S,)`` by ``semitones``, keeping its length ``S``.

    Every frequency is multiplied by ``r = 2^(semitones / 12)``: first a speed
    change (resampling, as :func:`speechser.io.audio.speed_perturb`) treats the
    audio as if recorded at ``R' = grid_hz * round(rate * r / grid_hz)`` Hz and
    resamples it to ``rate`` (length ``~S / r``, frequencies ``x R'/rate``), then
    :func:`time_stretch` brings it back to ``S`` samples. The effective ratio
    ``R'/rate`` is within ``grid_hz / (2 rate)`` of ``r`` (0.16 % at 16 kHz, about
    0.03 semitone); the grid keeps the resampling kernel small.
    (``torchaudio.functional.pitch_shift`` builds a ``rate x rate`` kernel for such
    ratios: seconds and gigabytes per utterance on a CPU.)
    """
    src_rate = int(grid_hz * round(rate * 2.0 ** (semitones / 12.0) / grid_hz))
    if src_rate == rate or wav.shape[0] == 0:
        return wav.astype(np.float32, copy=True)
    fast = resample(wav.astype(np.float32), src_rate, rate)
    return time_stretch(fast, rate, wav.shape[0])


# --------------------------------------------------------------------------- lists


class AudioList:
    """The recordings of a Kaldi ``wav.scp`` (noises or RIRs), read on demand at a given rate.

    ``cache`` whole recordings are kept (least recently used dropped). For noise,
    :meth:`segment` reads only the needed part of a plain file.
    """

    def __init__(self, scp: Path | str, what: str, cache: int = 256) -> None:
        self.scp = Path(scp)
        if not self.scp.is_file():
            raise AudioError(f"{what} list {self.scp}: no such file")
        table = read_kv(self.scp)
        if not table:
            raise AudioError(f"{what} list {self.scp}: no entries")
        self.what = what
        self.keys = list(table)
        self.values = [table[k] for k in self.keys]
        self.cache = cache
        self._make_caches()

    def _make_caches(self) -> None:
        self.full = lru_cache(maxsize=self.cache)(self._read_full)
        self._info = lru_cache(maxsize=4096)(self._read_info)

    def __getstate__(self) -> dict:  # the caches are per process (DataLoader workers rebuild them)
        return {k: v for k, v in self.__dict__.items() if k not in ("full", "_info")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._make_caches()

    def __len__(self) -> int:
        return len(self.keys)

    def _name(self, i: int) -> str:
        return f"{self.scp}:{self.keys[i]}"

    def _read_full(self, i: int, rate: int) -> np.ndarray:
        samples, r = read_audio_source(self.values[i], key=self._name(i))
        return resample(samples, r, rate)

    def _read_info(self, i: int) -> Optional[Any]:
        value = self.values[i].strip()
        if value.endswith("|"):
            return None
        try:
            return soundfile.info(value)
        except (soundfile.LibsndfileError, RuntimeError) as err:
            raise AudioError(f"{self.what} '{self._name(i)}': cannot read '{value}': {err}") from None

    def segment(self, i: int, n: int, rate: int, u: float) -> np.ndarray:
        """``(n,)`` samples of recording ``i`` at ``rate``, starting at fraction ``u`` in [0, 1)
        of the possible offsets; a recording shorter than ``n`` is repeated."""
        info = self._info(i)
        if info is not None:
            need = int(math.ceil(n * info.samplerate / rate)) + 64  # margin for the resampler's edges
            if info.frames > need:
                start = int(u * (info.frames - need + 1))
                try:
                    data, _ = soundfile.read(self.values[i].strip(), start=start, frames=need, dtype="float32",
                                             always_2d=True)
                except (soundfile.LibsndfileError, RuntimeError) as err:
                    raise AudioError(f"{self.what} '{self._name(i)}': {err}") from None
                seg = resample(data.mean(axis=1).astype(np.float32), int(info.samplerate), rate)
                return np.resize(seg, n) if seg.shape[0] < n else seg[:n]
        full = self.full(i, rate)
        if full.shape[0] >= n:
            start = int(u * (full.shape[0] - n + 1))
            return full[start : start + n]
        return np.resize(full, n)  # repeated


# --------------------------------------------------------------------------- the augmentor


class WaveformAugmentor:
    """``augmentor(wav, rate, key) -> wav'``: the transforms of ``conf`` (module docstring).

    ``wav``: ``(S,)`` float32 mono at ``rate`` Hz; the result is ``(S',)`` float32 with
    ``S' = S`` unless speed perturbation applied (``S' = round(S / f)``). ``key`` (the
    utterance id) and the epoch set by :meth:`set_epoch` seed the draws; without a
    key, a call counter stands in for it (reproducible only for the same call order).
    """

    def __init__(self, conf: AugmentConfig, seed: int = 0) -> None:
        self.conf = conf
        self.seed = int(seed) % (1 << 32)
        self.epoch = 0
        self._calls = 0
        self.noises = AudioList(conf.noise.noise_scp, "noise") if conf.noise.prob > 0 else None
        self.rirs = AudioList(conf.reverb.rir_scp, "RIR") if conf.reverb.prob > 0 else None
        logging.info("waveform augmentation: %s", self.describe())

    def describe(self) -> str:
        c = self.conf
        parts = []
        if c.speed.prob > 0:
            parts.append(f"speed p={c.speed.prob:g} factors {c.speed.factors}")
        if c.pitch.prob > 0:
            parts.append(f"pitch p={c.pitch.prob:g} semitones {c.pitch.semitones}")
        if self.rirs is not None:
            parts.append(f"reverb p={c.reverb.prob:g} ({len(self.rirs)} RIRs in {c.reverb.rir_scp})")
        if self.noises is not None:
            parts.append(f"noise p={c.noise.prob:g} SNR {c.noise.snr_db} dB ({len(self.noises)} recordings in "
                         f"{c.noise.noise_scp})")
        return "; ".join(parts) if parts else "none"

    @property
    def enabled(self) -> bool:
        return self.conf.enabled

    def set_epoch(self, epoch: int) -> None:
        """The epoch is part of every draw's seed: call it before each epoch."""
        self.epoch = int(epoch)

    def rng(self, key: str, stage: str) -> np.random.Generator:
        """The generator of transform ``stage`` for utterance ``key`` in the current epoch."""
        return np.random.default_rng([self.seed, self.epoch, zlib.crc32(key.encode("utf-8")), STAGES.index(stage)])

    def __call__(self, wav: np.ndarray, rate: int, key: Optional[str] = None) -> np.ndarray:
        if key is None:
            key = f"#call{self._calls}"
            self._calls += 1
        c = self.conf
        x = np.asarray(wav, dtype=np.float32)
        if c.speed.prob > 0:
            g = self.rng(key, "speed")
            if g.random() < c.speed.prob:
                x = speed_perturb(x, rate, float(c.speed.factors[int(g.integers(len(c.speed.factors)))]))
        if c.pitch.prob > 0:
            g = self.rng(key, "pitch")
            if g.random() < c.pitch.prob:
                x = pitch_shift(x, rate, float(g.uniform(*c.pitch.semitones)))
        if self.rirs is not None:
            g = self.rng(key, "reverb")
            if g.random() < c.reverb.prob:
                x = reverberate(x, self.rirs.full(int(g.integers(len(self.rirs))), rate))
        if self.noises is not None:
            g = self.rng(key, "noise")
            if g.random() < c.noise.prob:
                i = int(g.integers(len(self.noises)))
                snr = float(g.uniform(*c.noise.snr_db))
                x = add_noise(x, self.noises.segment(i, x.shape[0], rate, float(g.random())), snr)
        return np.ascontiguousarray(x, dtype=np.float32)
