"""A user's audio (files, lists of files, folders, Kaldi ``wav.scp``) as a Kaldi data directory without
labels, which packed inference then featurizes and decodes.

Inputs, each one of:

- an audio file (``.wav``, ``.flac``, ``.ogg``, ``.mp3``...; anything soundfile reads): key = its name
  without the suffix;
- a folder: every audio file below it (recursively), key = the path relative to the folder, ``/`` -> ``-``;
- a Kaldi ``wav.scp`` (a file whose name ends in ``.scp``): its keys; an ``utt2spk`` beside it gives the
  speakers;
- any other file: a list of audio paths, one per line (blank lines and ``#`` comments ignored).

Speakers (per-speaker normalization needs them): ``dir`` (default) = the folder a file lies in, ``each`` =
every file its own speaker, ``one`` = all inputs one speaker.

Long recordings: a recording longer than ``max_seconds`` is cut into ``ceil(duration / max_seconds)``
pieces of equal length (each at most ``max_seconds``, no overlap), decoded as utterances
``<key>-<start>-<end>`` (centiseconds, seven digits, Kaldi's convention) with a ``segments`` file.

Files that cannot be opened, and empty files, are skipped and listed with the reason; they never stop
the run.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import soundfile

from speechser.io.audio import AudioError, read_audio_source
from speechser.io.datadir import DataDirError, read_kv, utt2spk_to_spk2utt, write_kv, write_spk2utt

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif", ".au", ".sph")
SPEAKER_RULES = ("dir", "each", "one")


@dataclass
class InputSet:
    """What :func:`collect_inputs` found: recording key -> ``wav.scp`` value, recording key -> speaker,
    and the inputs skipped (key or path -> reason)."""

    wav: Dict[str, str] = field(default_factory=dict)
    speaker: Dict[str, str] = field(default_factory=dict)
    skipped: Dict[str, str] = field(default_factory=dict)


def _key(text: str) -> str:
    """A Kaldi key from a path: whitespace -> ``_``."""
    return re.sub(r"\s+", "_", text.strip())


def _is_audio(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_SUFFIXES


def _speaker(path: Path, rule: str, key: str) -> str:
    if rule == "each":
        return key
    if rule == "one":
        return "all"
    return _key(str(path.resolve().parent)).strip("/").replace("/", "-") or "root"


def collect_inputs(inputs: Sequence[str | Path], speakers: str = "dir") -> InputSet:
    """The recordings of ``inputs`` (see the module docstring); duplicate keys are an error naming both."""
    if speakers not in SPEAKER_RULES:
        raise ValueError(f"unknown speaker rule '{speakers}' ({', '.join(SPEAKER_RULES)})")
    out = InputSet()
    origin: Dict[str, str] = {}

    def add(key: str, value: str, spk: str, where: str) -> None:
        if key in out.wav:
            raise DataDirError(f"two inputs have the key '{key}': {origin[key]} and {where} (rename one, or give "
                               "a wav.scp with distinct keys)")
        out.wav[key], out.speaker[key], origin[key] = value, spk, where

    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and _is_audio(f))
            if not files:
                raise DataDirError(f"{p}: no audio files ({', '.join(AUDIO_SUFFIXES)}) in this folder")
            for f in files:
                key = _key(str(f.relative_to(p).with_suffix("")).replace("/", "-"))
                add(key, str(f.resolve()), _speaker(f, speakers, key), str(f))
        elif not p.exists():
            raise DataDirError(f"{p}: no such file or folder")
        elif _is_audio(p):
            key = _key(p.stem)
            add(key, str(p.resolve()), _speaker(p, speakers, key), str(p))
        elif p.suffix == ".scp":
            utt2spk = p.parent / "utt2spk"
            spk = read_kv(utt2spk) if utt2spk.is_file() else {}
            dir_spk = _key(p.resolve().parent.name) or "root"
            for key, value in read_kv(p).items():
                if spk and key not in spk:
                    raise DataDirError(f"{utt2spk}: no speaker for '{key}' of {p}")
                rule_spk = {"each": key, "one": "all"}.get(speakers, dir_spk)
                add(key, value, spk.get(key, rule_spk), f"{p}")
        else:
            for lineno, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                f = Path(line) if Path(line).is_absolute() else (p.parent / line)
                key = _key(f.stem)
                add(key, str(f.resolve()), _speaker(f, speakers, key), f"{p}:{lineno}")
    return out


def duration_of(value: str, key: str) -> float:
    """Seconds of a ``wav.scp`` value: from the file's header, or (a command) by running it."""
    if value.strip().endswith("|"):
        samples, rate = read_audio_source(value, key)
        return samples.shape[0] / rate
    path = Path(value)
    if not path.is_file():
        raise AudioError(f"utterance '{key}': audio file '{value}' does not exist")
    if path.stat().st_size == 0:
        raise AudioError(f"utterance '{key}': audio file '{value}' is empty (0 bytes)")
    try:
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError) as err:
        raise AudioError(f"utterance '{key}': cannot read audio '{value}': {err}") from None
    if info.frames <= 0:
        raise AudioError(f"utterance '{key}': audio '{value}' has no samples")
    return info.frames / info.samplerate


def plan_segments(duration: float, max_seconds: float) -> List[Tuple[float, float]]:
    """``[(start, end)]`` seconds: one piece, or ``ceil(duration / max_seconds)`` equal ones."""
    if duration <= max_seconds:
        return [(0.0, duration)]
    n = math.ceil(duration / max_seconds)
    step = duration / n
    return [(i * step, duration if i == n - 1 else (i + 1) * step) for i in range(n)]


def write_input_dir(found: InputSet, data_dir: Path | str, max_seconds: float = 30.0) -> Dict[str, str]:
    """Write ``wav.scp``, ``utt2spk``, ``spk2utt`` (and ``segments`` when a recording is cut) into
    ``data_dir``; a recording that cannot be read is skipped. Returns utterance -> recording key."""
    if max_seconds <= 0:
        raise ValueError(f"max_seconds must be positive, got {max_seconds}")
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    wav: Dict[str, str] = {}
    segments: Dict[str, str] = {}
    utt2spk: Dict[str, str] = {}
    utt2reco: Dict[str, str] = {}
    for key, value in sorted(found.wav.items()):
        try:
            duration = duration_of(value, key)
        except AudioError as err:
            logging.warning("skipping '%s': %s", key, err)
            found.skipped[key] = str(err)
            continue
        wav[key] = value
        pieces = plan_segments(duration, max_seconds)
        if len(pieces) > 1:
            logging.info("'%s': %.1f s, cut into %d segments of %.1f s", key, duration, len(pieces),
                         pieces[0][1] - pieces[0][0])
        for start, end in pieces:
            utt = key if len(pieces) == 1 else f"{key}-{int(round(start * 100)):07d}-{int(round(end * 100)):07d}"
            segments[utt] = f"{key} {start:.3f} {end:.3f}"
            utt2spk[utt] = found.speaker[key]
            utt2reco[utt] = key
    if not wav:
        raise DataDirError("none of the inputs could be read: " + "; ".join(f"{k}: {v}" for k, v in
                                                                            sorted(found.skipped.items())[:3]))
    write_kv(data_dir / "wav.scp", sorted(wav.items()))
    if any(u != r for u, r in utt2reco.items()):
        write_kv(data_dir / "segments", sorted(segments.items()))
    write_kv(data_dir / "utt2spk", sorted(utt2spk.items()))
    write_spk2utt(data_dir / "spk2utt", utt2spk_to_spk2utt(utt2spk))
    return utt2reco


def segment_bounds(data_dir: Path | str) -> Dict[str, Tuple[float, float]]:
    """Utterance -> (start, end) seconds within its recording, for the utterances of a ``segments`` file."""
    path = Path(data_dir) / "segments"
    if not path.is_file():
        return {}
    out: Dict[str, Tuple[float, float]] = {}
    for utt, value in read_kv(path).items():
        _, start, end = value.split()
        out[utt] = (float(start), float(end))
    return out
