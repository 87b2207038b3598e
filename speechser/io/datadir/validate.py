"""Validation of a data directory (``utils/validate_data_dir.sh``): each check a named function, run in order."""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from speechser.io.datadir.tables import (
    DataDirError,
    Entry,
    PER_SPK_FILES,
    PER_UTT_FILES,
    check_key,
    check_keys,
    check_sorted,
    present_files,
    read_entries,
    read_lines,
    utt2spk_to_spk2utt,
)


def check_spk_sorted(entries: Sequence[Entry], path: Path | str) -> None:
    """Raise naming the first line of an ``utt2spk`` (sorted by utterance) whose
    speaker sorts before the previous line's: Kaldi wants it sorted by speaker too."""
    for prev, cur in zip(entries, entries[1:]):
        if cur.value < prev.value:
            raise DataDirError(
                f"{path}:{cur.lineno}: speaker '{cur.value}' of utterance '{cur.key}' sorts before "
                f"speaker '{prev.value}' on line {prev.lineno}: utt2spk must be sorted by speaker as "
                f"well as by utterance (make speaker ids prefixes of utterance ids, or pass --no-spk-sort)"
            )


def _non_printable(ch: str) -> bool:
    """A control character (Unicode category Cc) that is not white space."""
    return ch not in "\t\n\r\v\f" and unicodedata.category(ch) == "Cc"


def check_text_file(path: Path | str, allow_non_print: bool = True) -> None:
    """Check that a transcript file is UTF-8 without a byte-order mark (:func:`read_lines`) and,
    unless ``allow_non_print``, has no non-printing (control) characters; the error names line and column."""
    for lineno, line in read_lines(path):
        if allow_non_print:
            continue
        for col, ch in enumerate(line, start=1):
            if _non_printable(ch):
                raise DataDirError(
                    f"{path}:{lineno}: non-printing character U+{ord(ch):04X} at column {col} "
                    f"(remove it, or pass --non-print if it is by design)"
                )


#: A segment may end this many seconds after its recording (rounding of written times).
SEGMENT_END_TOLERANCE = 0.001


def recording_durations(data_dir: Path | str) -> Tuple[Dict[str, float], Dict[str, str]]:
    """Durations (seconds) of the recordings of ``wav.scp`` that are cheap to know: from
    ``reco2dur`` when present, else from the header of each plain audio file
    (``soundfile.info``; commands ending in ``|`` and unreadable files are left out).
    Returns ``(durations, where each came from)``."""
    d = Path(data_dir)
    if (d / "reco2dur").is_file():
        durs, where = {}, {}
        for e in read_entries(d / "reco2dur"):
            try:
                durs[e.key] = float(e.value)
            except ValueError:
                raise DataDirError(f"{d}/reco2dur:{e.lineno}: not a number: '{e.value}'") from None
            where[e.key] = f"{d}/reco2dur:{e.lineno}"
        return durs, where
    import soundfile

    durs, where = {}, {}
    for e in read_entries(d / "wav.scp"):
        if e.value.endswith("|"):
            continue
        try:
            info = soundfile.info(e.value)
        except Exception:  # noqa: BLE001 -- unreadable audio is reported where it is read
            continue
        if info.samplerate > 0:
            durs[e.key] = info.frames / info.samplerate
            where[e.key] = f"{e.value} (wav.scp:{e.lineno})"
    return durs, where


def check_segment_bounds(data_dir: Path | str) -> None:
    """Raise naming ``segments`` and its line for a segment that ends after its recording
    (which reading would silently cut), where the duration is cheap to know (:func:`recording_durations`)."""
    d = Path(data_dir)
    if not (d / "segments").is_file() or not (d / "wav.scp").is_file():
        return
    durs, where = recording_durations(d)
    for e in read_entries(d / "segments"):
        fields = e.value.split()
        if len(fields) != 3 or fields[0] not in durs:
            continue
        try:
            end = float(fields[2])
        except ValueError:
            continue
        if end > durs[fields[0]] + SEGMENT_END_TOLERANCE:
            raise DataDirError(
                f"{d}/segments:{e.lineno}: segment '{e.key}' ends at {end:g} s, after the end of recording "
                f"'{fields[0]}' ({durs[fields[0]]:.3f} s, from {where[fields[0]]}); fix the segment times"
            )


@dataclass
class ValidationOptions:
    """What :func:`validate_data_dir` requires (its keyword arguments)."""

    require_audio: bool = True
    require_text: bool = False
    label_files: Mapping[str, Iterable[str]] = field(default_factory=dict)
    require_wav: bool = False
    require_feats: bool = False
    require_spk_sort: bool = False
    allow_non_print: bool = True


@dataclass
class DirUnderCheck:
    """A data directory being validated: its path, the options, and what the first check read."""

    d: Path
    opts: ValidationOptions
    utt2spk: List[Entry] = field(default_factory=list)

    def load(self, name: str) -> List[Entry]:
        """``name``'s entries, its keys checked and sorted."""
        entries = read_entries(self.d / name)
        check_keys(entries, self.d / name)
        check_sorted(entries, self.d / name)
        return entries

    @property
    def utt_set(self) -> Set[str]:
        return {e.key for e in self.utt2spk}


def check_utt2spk(c: DirUnderCheck) -> None:
    """``utt2spk`` exists, is well formed, sorted, not empty, one valid speaker id a line (sorted by speaker
    too with ``require_spk_sort``)."""
    d = c.d
    if not (d / "utt2spk").is_file():
        raise DataDirError(f"{d}/utt2spk: no such file (every data directory needs one)")
    c.utt2spk = c.load("utt2spk")
    if not c.utt2spk:
        raise DataDirError(f"{d}/utt2spk: empty")
    for e in c.utt2spk:
        if len(e.value.split()) != 1:
            raise DataDirError(f"{d}/utt2spk:{e.lineno}: expected one speaker id, got '{e.value}'")
        check_key(e.value, f"{d}/utt2spk:{e.lineno} (speaker id)")
    if c.opts.require_spk_sort:
        check_spk_sorted(c.utt2spk, d / "utt2spk")
    speakers = {e.value for e in c.utt2spk}
    if len(speakers) == 1:  # legal, and Kaldi's validator warns about it too
        logging.warning("%s/utt2spk: every utterance has one speaker ('%s'): per-speaker normalization then "
                        "normalizes over the whole set, and speaker-independent folds cannot be made (if the "
                        "speakers are unknown, give each utterance its own: utt2spk 'utt utt')", d, next(iter(speakers)))


def check_text(c: DirUnderCheck) -> None:
    """``text`` is UTF-8 (without control characters unless ``allow_non_print``); required with
    ``require_text``."""
    if (c.d / "text").is_file():
        check_text_file(c.d / "text", allow_non_print=c.opts.allow_non_print)
    elif c.opts.require_text:
        raise DataDirError(f"{c.d}/text: no such file (if this is by design, pass --no-text)")


def check_utt_key_sets(c: DirUnderCheck) -> None:
    """Every per-utterance file is well formed, sorted, and has exactly the utterances of ``utt2spk``."""
    utt_set = c.utt_set
    for name in present_files(c.d, PER_UTT_FILES):
        if name == "utt2spk":
            continue
        entries = c.load(name)
        keys = {e.key for e in entries}
        if keys != utt_set:
            extra = sorted(keys - utt_set)
            missing = sorted(utt_set - keys)
            what = []
            if missing:
                what.append(f"{len(missing)} utterance(s) missing, first '{missing[0]}'")
            if extra:
                first = next(e for e in entries if e.key == extra[0])
                what.append(f"{len(extra)} not in utt2spk, first '{extra[0]}' on line {first.lineno}")
            raise DataDirError(
                f"{c.d}/{name}: key set differs from utt2spk: {'; '.join(what)} "
                f"(utils/fix_data_dir.sh keeps the common utterances)"
            )


def check_spk2utt(c: DirUnderCheck) -> None:
    """``spk2utt`` exists and is the inverse of ``utt2spk``."""
    d = c.d
    if not (d / "spk2utt").is_file():
        raise DataDirError(f"{d}/spk2utt: no such file (utils/utt2spk_to_spk2utt makes it)")
    spk2utt_entries = c.load("spk2utt")
    expected = utt2spk_to_spk2utt({e.key: e.value for e in c.utt2spk})
    got = {e.key: e.value.split() for e in spk2utt_entries}
    if got != expected:
        bad = next((e for e in spk2utt_entries if expected.get(e.key) != e.value.split()), None)
        where = f":{bad.lineno} (speaker '{bad.key}')" if bad else ""
        raise DataDirError(f"{d}/spk2utt{where}: not the inverse of utt2spk (utils/utt2spk_to_spk2utt regenerates it)")


def check_spk_files(c: DirUnderCheck) -> None:
    """Every per-speaker file (``spk2gender``, ``cmvn.scp``) has an entry for each speaker."""
    spk_set = {e.value for e in c.utt2spk}
    for name in present_files(c.d, PER_SPK_FILES):
        keys = {e.key for e in c.load(name)}
        if not keys >= spk_set:
            missing = sorted(spk_set - keys)
            raise DataDirError(f"{c.d}/{name}: no entry for speaker '{missing[0]}'")


def check_audio(c: DirUnderCheck) -> None:
    """``wav.scp`` covers the utterances, or with ``segments`` the recordings of well-formed segments
    that end within their recordings; required with ``require_wav`` (or it or ``feats.scp`` with
    ``require_audio``)."""
    d, opts = c.d, c.opts
    if (d / "segments").is_file():
        reco_set = set()
        for e in read_entries(d / "segments"):
            fields = e.value.split()
            if len(fields) != 2 + 1:
                raise DataDirError(f"{d}/segments:{e.lineno}: expected 'utt reco start end'")
            try:
                start, end = float(fields[1]), float(fields[2])
            except ValueError as err:
                raise DataDirError(f"{d}/segments:{e.lineno}: bad time: {err}") from None
            if not 0 <= start < end:
                raise DataDirError(f"{d}/segments:{e.lineno}: need 0 <= start < end, got {start} {end}")
            check_key(fields[0], f"{d}/segments:{e.lineno} (recording id)")
            reco_set.add(fields[0])
        if (d / "wav.scp").is_file():
            wav_keys = {e.key for e in c.load("wav.scp")}
            missing = sorted(reco_set - wav_keys)
            if missing:
                raise DataDirError(f"{d}/wav.scp: no entry for recording '{missing[0]}' of segments")
            check_segment_bounds(d)
        elif opts.require_audio or opts.require_wav:
            raise DataDirError(f"{d}/wav.scp: no such file (segments needs it)")
    elif (d / "wav.scp").is_file():
        keys = {e.key for e in c.load("wav.scp")}
        utt_set = c.utt_set
        if keys != utt_set:
            missing = sorted(utt_set - keys) or sorted(keys - utt_set)
            raise DataDirError(f"{d}/wav.scp: key set differs from utt2spk at '{missing[0]}'")
    elif opts.require_wav:
        raise DataDirError(f"{d}/wav.scp: no such file (if this is by design, pass --no-wav)")
    elif opts.require_audio and not (d / "feats.scp").is_file():
        raise DataDirError(f"{d}: neither wav.scp nor feats.scp")


def check_feats(c: DirUnderCheck) -> None:
    """``feats.scp`` exists where ``require_feats`` asks for it (its keys are checked with the other
    per-utterance files)."""
    if c.opts.require_feats and not (c.d / "feats.scp").is_file():
        raise DataDirError(
            f"{c.d}/feats.scp: no such file (utils/make_fbank.sh extracts features; "
            f"if this is by design, pass --no-feats)"
        )


def check_labels(c: DirUnderCheck) -> None:
    """Every label of a file named in ``label_files`` is one of its known labels."""
    for name, labels in c.opts.label_files.items():
        if not (c.d / name).is_file():
            raise DataDirError(f"{c.d}/{name}: no such file")
        known = set(labels)
        for e in read_entries(c.d / name):
            if e.value not in known:
                raise DataDirError(
                    f"{c.d}/{name}:{e.lineno}: unknown label '{e.value}' for utterance '{e.key}' "
                    f"(known: {' '.join(sorted(known))})"
                )


#: The checks of :func:`validate_data_dir`, in the order they run (a later one may rely on an earlier one:
#: each after ``utt2spk`` reads the utterances it stored).
CHECKS: Tuple[Tuple[str, Callable[[DirUnderCheck], None]], ...] = (
    ("utt2spk", check_utt2spk),
    ("text", check_text),
    ("per-utterance key sets", check_utt_key_sets),
    ("spk2utt", check_spk2utt),
    ("per-speaker files", check_spk_files),
    ("audio", check_audio),
    ("features", check_feats),
    ("labels", check_labels),
)


def validate_data_dir(
    data_dir: Path | str,
    require_audio: bool = True,
    require_text: bool = False,
    label_files: Optional[Mapping[str, Iterable[str]]] = None,
    *,
    require_wav: bool = False,
    require_feats: bool = False,
    require_spk_sort: bool = False,
    allow_non_print: bool = True,
) -> int:
    """Check a data directory; raise :class:`DataDirError` on the first problem.

    Runs :data:`CHECKS` in order: ``utt2spk`` exists, every file is well formed and
    sorted (``utt2spk`` by speaker as well with ``require_spk_sort``), ``text``
    is UTF-8 (without control characters unless ``allow_non_print``), the
    per-utterance files share one key set, ``spk2utt`` is the inverse of
    ``utt2spk``, ``wav.scp`` covers the utterances (or the recordings of
    ``segments``), segment times are sane, the required files exist, and
    every label in a file named in ``label_files`` (e.g. ``{"utt2emo":
    ["ang", ...]}``) is known. A file that is not required is still checked
    when present.

    Required files: ``utt2spk`` and ``spk2utt`` always; ``wav.scp`` with
    ``require_wav``; ``wav.scp`` or ``feats.scp`` with ``require_audio``;
    ``text`` with ``require_text``; ``feats.scp`` with ``require_feats``. The
    defaults are lenient; ``utils/validate_data_dir.sh`` applies Kaldi's
    (``text``, ``wav.scp`` and ``feats.scp`` required, ``utt2spk`` sorted by
    speaker, no control characters in ``text``) unless told otherwise.

    Returns the number of utterances.
    """
    d = Path(data_dir)
    if not d.is_dir():
        raise DataDirError(f"{d}: not a directory")
    opts = ValidationOptions(require_audio, require_text, dict(label_files or {}), require_wav, require_feats,
                             require_spk_sort, allow_non_print)
    under_check = DirUnderCheck(d, opts)
    for _name, check in CHECKS:
        check(under_check)
    return len(under_check.utt2spk)
