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

import hashlib
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import soundfile

from speechser.io.audio import AudioError, read_audio_source
from speechser.io.datadir import (DataDirError, read_entries, read_kv, read_lines, utt2spk_to_spk2utt, write_kv,
                                  write_spk2utt)

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif", ".au", ".sph")
SPEAKER_RULES = ("dir", "each", "one")


class NothingToLabel(DataDirError):
    """No input could be labelled: every one was skipped (``skipped``: key or path -> reason)."""

    def __init__(self, skipped: Dict[str, str]) -> None:
        self.skipped = dict(skipped)
        first = "; ".join(f"{k}: {v}" for k, v in sorted(self.skipped.items())[:2])
        super().__init__(f"none of the {len(self.skipped)} input(s) could be labelled ({first}"
                         f"{'; ...' if len(self.skipped) > 2 else ''})")


@dataclass
class InputSet:
    """What :func:`collect_inputs` found: recording key -> ``wav.scp`` value, recording key -> speaker,
    and the inputs skipped (key or path -> reason)."""

    wav: Dict[str, str] = field(default_factory=dict)
    speaker: Dict[str, str] = field(default_factory=dict)
    skipped: Dict[str, str] = field(default_factory=dict)
    #: The inputs as given, and the speaker files read beside them (never to be written over).
    read: List[Path] = field(default_factory=list)


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


def _audio_below(folder: Path) -> Tuple[List[Path], Dict[str, str]]:
    """Every audio file below ``folder``, symbolic links to files and folders followed (a link back to a
    folder already visited is listed in the second value, path -> reason, instead of looping)."""
    files: List[Path] = []
    loops: Dict[str, str] = {}
    seen = set()
    for root, dirs, names in os.walk(folder, followlinks=True):
        st = os.stat(root)
        if (st.st_dev, st.st_ino) in seen:
            loops[root] = "a link to a folder already searched (a loop): not searched again"
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirs.sort()
        for name in sorted(names):
            f = Path(root) / name
            if _is_audio(f) and f.is_file():
                files.append(f)
    return files, loops


def _is_command(value: str) -> bool:
    return value.strip().endswith("|")


def collect_inputs(inputs: Sequence[str | Path], speakers: str = "dir", allow_commands: bool = False) -> InputSet:
    """The recordings of ``inputs`` (see the module docstring); duplicate keys are an error naming both.

    A ``wav.scp`` line whose value is a command (ends in ``|``) is refused, naming the file and line, unless
    ``allow_commands``: an input list from elsewhere must not run programs on this machine by default."""
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
        out.read.append(p)
        if p.is_dir():
            files, loops = _audio_below(p)
            out.skipped.update(loops)
            if not files:
                raise DataDirError(f"{p}: no audio files ({', '.join(AUDIO_SUFFIXES)}) in this folder")
            for f in files:
                key = _key(str(f.relative_to(p).with_suffix("")).replace("/", "-"))
                add(key, str(f.resolve()), _speaker(f, speakers, key), str(f))
        elif not p.exists():
            raise DataDirError(f"{p}: no such file or folder")
        elif not p.is_file():
            raise DataDirError(f"{p}: not a regular file or folder (a FIFO or device?): give audio files, folders, "
                               "list files or a wav.scp")
        elif _is_audio(p):
            key = _key(p.stem)
            add(key, str(p.resolve()), _speaker(p, speakers, key), str(p))
        elif p.suffix == ".scp":
            utt2spk = p.parent / "utt2spk"
            spk = read_kv(utt2spk) if utt2spk.is_file() else {}
            if spk:
                out.read.append(utt2spk)
            dir_spk = _key(p.resolve().parent.name) or "root"
            for entry in read_entries(p):
                key, value = entry.key, entry.value
                if _is_command(value) and not allow_commands:
                    raise DataDirError(f"{p}:{entry.lineno}: '{key}' is a command ('{value}'), which speechser-infer "
                                       "does not run unless told to: give --allow-commands (Python: "
                                       "allow_commands=True) if you trust this list, or give audio files")
                if spk and key not in spk:
                    raise DataDirError(f"{utt2spk}: no speaker for '{key}' of {p}")
                rule_spk = {"each": key, "one": "all"}.get(speakers, dir_spk)
                add(key, value, spk.get(key, rule_spk), f"{p}:{entry.lineno}")
        else:
            for lineno, line in read_lines(p):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                f = Path(line) if Path(line).is_absolute() else (p.parent / line)
                key = _key(f.stem)
                add(key, str(f.resolve()), _speaker(f, speakers, key), f"{p}:{lineno}")
    return out


def check_out_dir(found: InputSet, out_dir: Path | str, outputs: Sequence[str]) -> None:
    """Refuse an output folder whose files (``outputs``: their names) would replace an input: the folder of
    an input list or ``wav.scp`` (a data directory, whose reference ``utt2emo`` or ``text`` the predictions
    would replace), an input folder, or a folder where an output name is an input file."""
    out = Path(out_dir).resolve()
    for p in found.read:
        where = p.resolve()
        if where == out or (where.is_file() and where.parent == out and not _is_audio(where)):
            raise DataDirError(f"--out-dir {out_dir} is the folder of the input {p}: the results ({', '.join(outputs)}) "
                               "would replace files there (a data directory's reference labels, say); give an "
                               "--out-dir of its own")
    taken = {str(Path(v).resolve()) for v in found.wav.values() if not _is_command(v)}
    for name in outputs:
        if str(out / name) in taken:
            raise DataDirError(f"--out-dir {out_dir}: its output {name} is one of the inputs; give an --out-dir of "
                               "its own")


def run_commands(found: InputSet, into: Path | str) -> None:
    """Run each ``wav.scp`` command of ``found`` once and write its audio to a file in ``into`` that replaces
    the command, so that the duration and the samples come from the same run. A command that fails is
    skipped with its reason."""
    into = Path(into)
    for key, value in sorted(found.wav.items()):
        if not _is_command(value):
            continue
        into.mkdir(parents=True, exist_ok=True)
        logging.info("running the command of '%s': %s", key, value)
        try:
            samples, rate = read_audio_source(value, key)
        except AudioError as err:
            logging.warning("skipping '%s': %s", key, err)
            found.skipped[key] = str(err)
            del found.wav[key]
            continue
        path = into / f"{hashlib.sha1(key.encode()).hexdigest()}.wav"
        soundfile.write(str(path), samples, rate, subtype="FLOAT")
        found.wav[key] = str(path)


def duration_of(value: str, key: str) -> float:
    """Seconds of an audio file, from its header (commands are run once beforehand: :func:`run_commands`)."""
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
        raise NothingToLabel(found.skipped)
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
