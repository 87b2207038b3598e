"""Audio loading through soundfile: ``wav.scp`` paths and pipe commands, ``segments``, resampling."""

from __future__ import annotations

import io
import logging
import struct
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterator, Optional, Tuple

import numpy as np
import soundfile

from speechser.io.datadir import read_kv


class AudioError(RuntimeError):
    """Audio that cannot be read; the message names the utterance and the source."""


class EmptyAudioError(AudioError):
    """A readable audio source that holds no samples (skippable, unlike a broken file)."""


class TruncatedAudioError(AudioError):
    """A WAV whose data chunk holds fewer bytes than its header declares (a file cut short).

    An error by default; a caller that lets the user skip broken audio may catch
    this class and count the utterance as skipped."""


# A data-chunk size a streaming writer (sox, ffmpeg to a pipe) puts when the length is unknown.
_UNKNOWN_WAV_SIZES = (0, 0xFFFFFFFF, 0x7FFFFFFF, 0x7FFFF000)


def wav_truncation(head: bytes, total_size: int) -> Optional[Tuple[int, int]]:
    """``(declared, present)`` data bytes of a RIFF/WAVE file cut inside its data chunk, else None.

    ``head`` is the start of the file (the chunk headers before the audio), ``total_size`` the
    size of the whole file. Files that are not RIFF/WAVE (RF64, W64, FLAC, ...), and streamed
    WAVs whose header leaves the length unknown, are not judged (None).
    """
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos = 12
    while pos + 8 <= len(head):
        chunk_id = head[pos:pos + 4]
        (size,) = struct.unpack("<I", head[pos + 4:pos + 8])
        if chunk_id == b"data":
            if size in _UNKNOWN_WAV_SIZES:
                return None
            present = total_size - (pos + 8)
            return (size, present) if present < size else None
        pos += 8 + size + (size & 1)
    return None


def _check_wav_length(head: bytes, total_size: int, key: str, source: str) -> None:
    cut = wav_truncation(head, total_size)
    if cut is not None:
        declared, present = cut
        raise TruncatedAudioError(
            f"utterance '{key}': audio '{source}' is truncated: its WAV header declares "
            f"{declared} bytes of audio data but the file holds {max(present, 0)} "
            f"({100.0 * max(present, 0) / declared:.1f}%)"
        )


def _check_peak(samples: np.ndarray, key: str, source: str) -> np.ndarray:
    """Float audio whose peak exceeds 1.0 is scaled down to peak 1.0 (never clipped), with a warning
    naming the source and the peak: a later conversion to 16-bit PCM would otherwise hard-clip it."""
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if peak > 1.0:
        logging.warning(
            "utterance '%s': audio '%s' has peak %.4g, beyond [-1, 1]; scaled by 1/%.4g "
            "(peak-normalized to 1.0) instead of clipping", key, source, peak, peak,
        )
        samples = samples / peak
    return samples


def read_audio_source(source: str, key: str = "?") -> Tuple[np.ndarray, int]:
    """Read one ``wav.scp`` value: a file path, or a shell command ending in ``|``.

    Returns ``(samples, rate)`` with samples float32 of shape ``(T,)`` (mono;
    multi-channel audio is averaged) in [-1, 1]. Raises :class:`AudioError`
    naming ``key`` and ``source`` for a missing, empty or unreadable input, and
    :class:`TruncatedAudioError` for a WAV cut inside its data chunk (fewer data
    bytes than its header declares). Float audio with a peak beyond 1.0 is
    peak-normalized to 1.0 (never silently clipped) with a logged warning
    naming the source and the peak.
    """
    source = source.strip()
    try:
        if source.endswith("|"):
            cmd = source[:-1]
            # safe: Kaldi's wav.scp pipe, from the user's own data directories (recipes); lists from elsewhere
            # reach here only through speechser-infer's --allow-commands (speechser.pack.inputs.run_commands)
            proc = subprocess.run(cmd, shell=True, capture_output=True, check=False)  # safe: see the line above
            if proc.returncode != 0:
                raise AudioError(
                    f"utterance '{key}': command '{cmd}' failed with exit code {proc.returncode}: "
                    f"{proc.stderr.decode(errors='replace').strip()[:500]}"
                )
            if not proc.stdout:
                raise AudioError(f"utterance '{key}': command '{cmd}' wrote no audio")
            _check_wav_length(proc.stdout[:65536], len(proc.stdout), key, cmd)
            data, rate = soundfile.read(io.BytesIO(proc.stdout), dtype="float32", always_2d=True)
        else:
            path = Path(source)
            if not path.is_file():
                raise AudioError(f"utterance '{key}': audio file '{source}' does not exist")
            if path.stat().st_size == 0:
                raise AudioError(f"utterance '{key}': audio file '{source}' is empty (0 bytes)")
            with open(path, "rb") as fh:
                head = fh.read(65536)
            _check_wav_length(head, path.stat().st_size, key, source)
            data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except AudioError:
        raise
    except (soundfile.LibsndfileError, RuntimeError, ValueError, EOFError) as err:
        raise AudioError(f"utterance '{key}': cannot read audio '{source}': {err}") from None
    if data.shape[0] == 0:
        raise EmptyAudioError(f"utterance '{key}': audio '{source}' has no samples")
    samples = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.isfinite(samples).all():
        raise AudioError(f"utterance '{key}': audio '{source}' has non-finite samples")
    samples = _check_peak(samples, key, source)
    return np.ascontiguousarray(samples, dtype=np.float32), int(rate)


def resample(samples: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """Band-limited resampling (torchaudio's sinc interpolation); ``(T,)`` -> ``(T',)``."""
    if orig_rate == new_rate:
        return samples
    import torch
    import torchaudio.functional as AF

    out = AF.resample(torch.from_numpy(samples), orig_rate, new_rate)
    return out.numpy().astype(np.float32, copy=False)


@dataclass(frozen=True)
class Segment:
    reco: str
    start: float
    end: float


class AudioReader:
    """Random access to the utterances of a data directory's audio.

    Reads ``wav.scp`` (and ``segments`` when present). ``reader[utt]`` returns
    ``(samples, rate)``; with ``target_rate`` set the audio is resampled.
    Whole recordings are cached one at a time, so iterating over sorted
    segments of one recording reads it once.
    """

    def __init__(self, data_dir: Path | str, target_rate: Optional[int] = None) -> None:
        d = Path(data_dir)
        self.wav_scp = d / "wav.scp"
        self.wav: Dict[str, str] = read_kv(self.wav_scp)
        self.segments: Optional[Dict[str, Segment]] = None
        if (d / "segments").is_file():
            self.segments = {}
            for utt, value in read_kv(d / "segments").items():
                reco, start, end = value.split()
                self.segments[utt] = Segment(reco, float(start), float(end))
        self.target_rate = target_rate
        self._load = lru_cache(maxsize=1)(self._load_reco)

    def keys(self) -> Iterator[str]:
        return iter(self.segments if self.segments is not None else self.wav)

    def __len__(self) -> int:
        return len(self.segments if self.segments is not None else self.wav)

    def _load_reco(self, reco: str) -> Tuple[np.ndarray, int]:
        if reco not in self.wav:
            raise AudioError(f"recording '{reco}' is not in {self.wav_scp}")
        return read_audio_source(self.wav[reco], key=reco)

    def __getitem__(self, utt: str) -> Tuple[np.ndarray, int]:
        if self.segments is not None:
            if utt not in self.segments:
                raise AudioError(f"utterance '{utt}' is not in segments")
            seg = self.segments[utt]
            samples, rate = self._load(seg.reco)
            begin, end = int(round(seg.start * rate)), int(round(seg.end * rate))
            if begin >= samples.shape[0]:
                raise AudioError(
                    f"utterance '{utt}': segment starts at {seg.start}s, after the end of "
                    f"recording '{seg.reco}' ({samples.shape[0] / rate:.2f}s)"
                )
            samples = samples[begin:end]
        else:
            samples, rate = self._load(utt)
        if self.target_rate is not None and rate != self.target_rate:
            samples, rate = resample(samples, rate, self.target_rate), self.target_rate
        return samples, rate


def speed_perturb(samples: np.ndarray, rate: int, factor: float) -> np.ndarray:
    """Play ``samples`` ``factor`` times faster (tempo and pitch, as sox's ``speed``):
    ``(T,)`` -> ``(round(T / factor),)`` at the same rate, frequencies times ``factor``."""
    if factor <= 0:
        raise ValueError("speed factor must be positive")
    if factor == 1.0:
        return samples
    return resample(samples, int(round(rate * factor)), rate)
