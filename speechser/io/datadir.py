"""Kaldi-format data directories: reading, writing, validating, fixing, subsetting.

A data directory holds plain text files of ``key value`` lines. Keys are sorted
in the C locale (byte order; for UTF-8 text this equals Python's code-point
order of ``str``) and every per-utterance file has the same key set.

Files by what their keys are:

* per utterance: ``utt2spk``, ``text``, ``utt2emo``, ``utt2gender``, ... (see
  :data:`PER_UTT_FILES`), and ``wav.scp`` when there is no ``segments`` file;
* per recording: ``wav.scp`` when ``segments`` exists (``segments`` maps
  ``utt -> reco start end``);
* per speaker: ``spk2utt``, ``spk2gender``, ``cmvn.scp``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shlex
import shutil
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

PER_UTT_FILES: Tuple[str, ...] = (
    "utt2spk",
    "text",
    "utt2emo",
    "utt2gender",
    "utt2style",
    "utt2emo_dist",
    "utt2num_frames",
    "utt2dur",
    "feats.scp",
    "segments",
)
PER_SPK_FILES: Tuple[str, ...] = ("spk2gender", "cmvn.scp")
#: Per-utterance files outside :data:`PER_UTT_FILES` that Kaldi knows; with every other ``utt2*``
#: file of a directory (``utt2age``, ``utt2lang``, ...) they are carried and filtered by fix,
#: subset, copy and combine, but (as Kaldi's ``--utt-extra-files``) do not decide which utterances
#: are kept. See :func:`extra_utt_files`.
KALDI_EXTRA_UTT_FILES: Tuple[str, ...] = ("utt2uniq", "utt2lang", "utt2warp", "vad.scp")
#: Utterance lists (one utterance id a line, no value) outside the ``utt2*`` pattern, carried and filtered
#: to the kept utterances as :data:`KALDI_EXTRA_UTT_FILES` are (an empty list stays an empty file), never
#: deciding which utterances are kept: ``no_consensus``, the MSP-Podcast recipe's Train utterances of
#: consensus O/X (a training set leaves them out with ``data.skip_file``).
UTT_LIST_FILES: Tuple[str, ...] = ("no_consensus",)
_UTT_FILE_RE = re.compile(r"utt2[A-Za-z0-9_]+")
#: Files whose value may be empty (an empty transcript is legal).
EMPTY_VALUE_OK: Tuple[str, ...] = ("text",)


class DataDirError(ValueError):
    """A data directory or one of its files is malformed; the message names file and line."""


def key_problem(key: str) -> Optional[str]:
    """Why ``key`` cannot be an utterance, speaker or recording id, or None when it can.

    Kaldi's rule (no white space) plus three of ours, because keys become file names
    (``<audio-dir>/<utt>.wav``): no ``/``, no leading ``.``, no control characters."""
    if not key:
        return "an empty key"
    if any(ch.isspace() for ch in key):
        return "white space in a key"
    if "/" in key:
        return "a '/' in a key (keys become file names)"
    if key.startswith("."):
        return "a key starting with '.' (keys become file names)"
    bad = next((ch for ch in key if unicodedata.category(ch) == "Cc"), None)
    if bad is not None:
        return f"control character U+{ord(bad):04X} in a key"
    return None


def check_key(key: str, where: str) -> str:
    """Return ``key``, or raise :class:`DataDirError` at ``where`` (``file:line``) if it is not a legal id."""
    problem = key_problem(key)
    if problem is not None:
        raise DataDirError(
            f"{where}: bad key {key!r}: {problem}; ids may not contain white space, '/' or control "
            f"characters, nor start with '.' (rename it, e.g. with utils/copy_data_dir.sh prefixes, "
            f"or fix the data preparation)"
        )
    return key


#: The longest file name (in UTF-8 bytes) :func:`safe_key_filename` builds; file systems allow 255,
#: and the margin leaves room for a suffix a writer may add (``.tmp``).
MAX_KEY_FILENAME_BYTES = 200


def safe_key_filename(key: str, source: str, suffix: str = "") -> str:
    """A file name ``<key><suffix>`` built from an id, after :func:`check_key`: a key can never
    name a file outside the directory it is joined to. ``source`` says where the key came from
    (``data/x/utt2spk:3``) for the error. Every file name made from a key goes through here.

    A name longer than :data:`MAX_KEY_FILENAME_BYTES` UTF-8 bytes (a key is not limited in length,
    a file name is) becomes ``<start of the key>-<sha1 of the whole key><suffix>``: as long as the
    limit, distinct for distinct keys, the same on every run. Shorter names are the key itself."""
    name = check_key(key, source) + suffix
    if os.sep in name or (os.altsep and os.altsep in name) or name in (".", ".."):
        raise DataDirError(f"{source}: key {key!r} with suffix {suffix!r} is not a plain file name")
    if len(name.encode("utf-8")) > MAX_KEY_FILENAME_BYTES:
        digest = hashlib.sha1(key.encode("utf-8")).hexdigest()
        budget = max(0, MAX_KEY_FILENAME_BYTES - len(digest) - 1 - len(suffix.encode("utf-8")))
        head = key.encode("utf-8")[:budget].decode("utf-8", errors="ignore")
        name = f"{head}-{digest}{suffix}"
    return name


def check_keys(entries: Sequence["Entry"], path: Path | str) -> None:
    """:func:`check_key` on every key of a file read with :func:`read_entries`."""
    for e in entries:
        check_key(e.key, f"{path}:{e.lineno}")


def extra_utt_files(data_dir: Path | str) -> List[str]:
    """The per-utterance files of ``data_dir`` outside :data:`PER_UTT_FILES`: Kaldi's
    :data:`KALDI_EXTRA_UTT_FILES`, the utterance lists :data:`UTT_LIST_FILES` and every other
    ``utt2<name>`` file, sorted."""
    d = Path(data_dir)
    if not d.is_dir():
        return []
    found = {n for n in (*KALDI_EXTRA_UTT_FILES, *UTT_LIST_FILES) if (d / n).is_file()}
    found |= {p.name for p in d.iterdir() if _UTT_FILE_RE.fullmatch(p.name) and p.is_file()}
    return sorted(found - set(PER_UTT_FILES))


def check_not_nested(src: Path | str, dst: Path | str, tool: str) -> None:
    """Refuse (before anything is touched) a destination that is the source, inside it, or holds it."""
    s, t = Path(src).resolve(), Path(dst).resolve()
    if s == t:
        raise DataDirError(f"{tool}: source and destination are the same directory ({src}); "
                           f"give a different destination")
    if s in t.parents:
        raise DataDirError(f"{tool}: destination {dst} is inside source {src}; give a destination outside it")
    if t in s.parents:
        raise DataDirError(f"{tool}: destination {dst} contains source {src}; give a destination outside it")


@dataclass(frozen=True)
class Entry:
    """One ``key value`` line of a file, with its 1-based line number."""

    key: str
    value: str
    lineno: int


_KEY_SPLIT = re.compile(r"[ \t]+")
_BOM = "\ufeff"


def read_lines(path: Path | str) -> Iterator[Tuple[int, str]]:
    """``(line number, line)`` of a UTF-8 data file, 1-based, the line end removed: the one way
    data files are read (:func:`read_entries`, :func:`check_text_file`).

    Raises :class:`DataDirError` naming ``path:line``, for bytes that are not UTF-8 (Latin-1 text,
    say) the byte and its place in the line, and for a UTF-8 byte-order mark (BOM) the mark and how
    to strip it: left in, it would become part of the first key."""
    path = Path(path)
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for lineno, raw in enumerate(f, start=1):
            line = raw.rstrip("\n").rstrip("\r")
            try:
                line.encode("utf-8")
            except UnicodeEncodeError:
                data = line.encode("utf-8", errors="surrogateescape")
                try:
                    data.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise DataDirError(
                        f"{path}:{lineno}: not valid UTF-8 (byte 0x{data[err.start]:02X} at byte {err.start + 1} "
                        f"of the line: {err.reason}); re-encode the file as UTF-8 (if it is Latin-1: "
                        f"iconv -f ISO-8859-1 -t UTF-8 {shlex.quote(str(path))} > new-file)"
                    ) from None
            if line.startswith(_BOM):
                where = "the file starts" if lineno == 1 else f"line {lineno} starts"
                first = (line.lstrip(_BOM).split() or [""])[0]
                raise DataDirError(
                    f"{path}:{lineno}: {where} with a UTF-8 byte-order mark (BOM), which would become part of "
                    f"the key '{first}'; strip it, e.g. sed -i '{lineno}s/^\\xEF\\xBB\\xBF//' "
                    f"{shlex.quote(str(path))}"
                )
            yield lineno, line


def read_entries(path: Path | str, allow_empty_value: Optional[bool] = None) -> List[Entry]:
    """Read a ``key value`` file in file order.

    Raises :class:`DataDirError` naming ``path:line`` for a blank line, a line
    without a value (unless ``allow_empty_value``; by default only ``text``
    may have empty values), a duplicated key, and (:func:`read_lines`) text
    that is not UTF-8 or a byte-order mark.
    """
    path = Path(path)
    if allow_empty_value is None:
        allow_empty_value = path.name in EMPTY_VALUE_OK
    if not path.exists():
        raise DataDirError(f"{path}: no such file")
    entries: List[Entry] = []
    seen: Dict[str, int] = {}
    for lineno, line in read_lines(path):
        if not line.strip():
            raise DataDirError(f"{path}:{lineno}: empty line")
        # Kaldi's rule: the key ends at the first space or tab. Other white space (a no-break space,
        # say) is part of the key, where validation reports it, rather than a silent split point.
        parts = _KEY_SPLIT.split(line.strip(" \t"), maxsplit=1)
        key = parts[0]
        value = parts[1].strip() if len(parts) > 1 else ""
        if not value and not allow_empty_value:
            raise DataDirError(f"{path}:{lineno}: key '{key}' has no value")
        if key in seen:
            raise DataDirError(
                f"{path}:{lineno}: duplicate key '{key}' (first on line {seen[key]})"
            )
        seen[key] = lineno
        entries.append(Entry(key, value, lineno))
    return entries


def read_kv(path: Path | str, allow_empty_value: Optional[bool] = None) -> Dict[str, str]:
    """Read a ``key value`` file into an insertion-ordered dict (see :func:`read_entries`)."""
    return {e.key: e.value for e in read_entries(path, allow_empty_value)}


def write_kv(path: Path | str, mapping: Mapping[str, str] | Iterable[Tuple[str, str]]) -> None:
    """Write ``key value`` lines sorted by key (C-locale order), atomically."""
    items = mapping.items() if isinstance(mapping, Mapping) else mapping
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for key, value in sorted(items, key=lambda kv: kv[0]):
            f.write(f"{key} {value}\n" if value != "" else f"{key}\n")
    tmp.replace(path)


def check_sorted(entries: Sequence[Entry], path: Path | str) -> None:
    """Raise naming the first line whose key is not after the previous one in C-locale order."""
    for prev, cur in zip(entries, entries[1:]):
        if not prev.key < cur.key:
            raise DataDirError(
                f"{path}:{cur.lineno}: key '{cur.key}' is not sorted after '{prev.key}' "
                f"(line {prev.lineno}); keys must be sorted in the C locale "
                f"(utils/fix_data_dir.sh sorts them)"
            )


def utt2spk_to_spk2utt(utt2spk: Mapping[str, str]) -> Dict[str, List[str]]:
    """Invert ``utt2spk``: speaker -> sorted utterance list."""
    spk2utt: Dict[str, List[str]] = {}
    for utt in sorted(utt2spk):
        spk2utt.setdefault(utt2spk[utt], []).append(utt)
    return dict(sorted(spk2utt.items()))


def spk2utt_to_utt2spk(spk2utt: Mapping[str, Sequence[str]]) -> Dict[str, str]:
    """Expand ``spk2utt`` to ``utt2spk`` (sorted by utterance)."""
    utt2spk: Dict[str, str] = {}
    for spk, utts in spk2utt.items():
        for utt in utts:
            if utt in utt2spk:
                raise DataDirError(f"utterance '{utt}' belongs to two speakers: {utt2spk[utt]}, {spk}")
            utt2spk[utt] = spk
    return dict(sorted(utt2spk.items()))


def write_spk2utt(path: Path | str, spk2utt: Mapping[str, Sequence[str]]) -> None:
    write_kv(path, {spk: " ".join(utts) for spk, utts in spk2utt.items()})


def write_data_dir(out: Path | str, tables: Mapping[str, Mapping[str, str]]) -> Path:
    """A data directory ``out`` from per-utterance tables (file name -> utterance -> value, e.g.
    ``{"wav.scp": ..., "utt2spk": ..., "utt2emo": ...}``; each written sorted by :func:`write_kv`), with
    ``spk2utt`` derived from ``utt2spk``: what a recipe's ``local/prepare_<corpus>.py`` writes. Returns ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        write_kv(out / name, table)
    write_spk2utt(out / "spk2utt", utt2spk_to_spk2utt(tables["utt2spk"]))
    return out


def read_spk2utt(path: Path | str) -> Dict[str, List[str]]:
    return {spk: value.split() for spk, value in read_kv(path).items()}


def present_files(data_dir: Path, names: Iterable[str]) -> List[str]:
    return [n for n in names if (data_dir / n).is_file()]


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

    Checks, in this order: ``utt2spk`` exists, every file is well formed and
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
    if not (d / "utt2spk").is_file():
        raise DataDirError(f"{d}/utt2spk: no such file (every data directory needs one)")

    def load(name: str) -> List[Entry]:
        entries = read_entries(d / name)
        check_keys(entries, d / name)
        check_sorted(entries, d / name)
        return entries

    utt2spk_entries = load("utt2spk")
    utts = [e.key for e in utt2spk_entries]
    if not utts:
        raise DataDirError(f"{d}/utt2spk: empty")
    utt_set = set(utts)
    for e in utt2spk_entries:
        if len(e.value.split()) != 1:
            raise DataDirError(f"{d}/utt2spk:{e.lineno}: expected one speaker id, got '{e.value}'")
        check_key(e.value, f"{d}/utt2spk:{e.lineno} (speaker id)")
    if require_spk_sort:
        check_spk_sorted(utt2spk_entries, d / "utt2spk")

    if (d / "text").is_file():
        check_text_file(d / "text", allow_non_print=allow_non_print)
    elif require_text:
        raise DataDirError(f"{d}/text: no such file (if this is by design, pass --no-text)")

    for name in present_files(d, PER_UTT_FILES):
        if name == "utt2spk":
            continue
        entries = load(name)
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
                f"{d}/{name}: key set differs from utt2spk: {'; '.join(what)} "
                f"(utils/fix_data_dir.sh keeps the common utterances)"
            )

    if (d / "spk2utt").is_file():
        spk2utt_entries = load("spk2utt")
        expected = utt2spk_to_spk2utt({e.key: e.value for e in utt2spk_entries})
        got = {e.key: e.value.split() for e in spk2utt_entries}
        if got != expected:
            bad = next(
                (e for e in spk2utt_entries if expected.get(e.key) != e.value.split()),
                None,
            )
            where = f":{bad.lineno} (speaker '{bad.key}')" if bad else ""
            raise DataDirError(
                f"{d}/spk2utt{where}: not the inverse of utt2spk "
                f"(utils/utt2spk_to_spk2utt regenerates it)"
            )
    else:
        raise DataDirError(f"{d}/spk2utt: no such file (utils/utt2spk_to_spk2utt makes it)")

    spk_set = {e.value for e in utt2spk_entries}
    for name in present_files(d, PER_SPK_FILES):
        keys = {e.key for e in load(name)}
        if not keys >= spk_set:
            missing = sorted(spk_set - keys)
            raise DataDirError(f"{d}/{name}: no entry for speaker '{missing[0]}'")

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
            wav_keys = {e.key for e in load("wav.scp")}
            missing = sorted(reco_set - wav_keys)
            if missing:
                raise DataDirError(f"{d}/wav.scp: no entry for recording '{missing[0]}' of segments")
            check_segment_bounds(d)
        elif require_audio or require_wav:
            raise DataDirError(f"{d}/wav.scp: no such file (segments needs it)")
    elif (d / "wav.scp").is_file():
        entries = load("wav.scp")
        keys = {e.key for e in entries}
        if keys != utt_set:
            missing = sorted(utt_set - keys) or sorted(keys - utt_set)
            raise DataDirError(f"{d}/wav.scp: key set differs from utt2spk at '{missing[0]}'")
    elif require_wav:
        raise DataDirError(f"{d}/wav.scp: no such file (if this is by design, pass --no-wav)")
    elif require_audio and not (d / "feats.scp").is_file():
        raise DataDirError(f"{d}: neither wav.scp nor feats.scp")

    if require_feats and not (d / "feats.scp").is_file():
        raise DataDirError(
            f"{d}/feats.scp: no such file (utils/make_fbank.sh extracts features; "
            f"if this is by design, pass --no-feats)"
        )

    for name, labels in (label_files or {}).items():
        if not (d / name).is_file():
            raise DataDirError(f"{d}/{name}: no such file")
        known = set(labels)
        for e in read_entries(d / name):
            if e.value not in known:
                raise DataDirError(
                    f"{d}/{name}:{e.lineno}: unknown label '{e.value}' for utterance '{e.key}' "
                    f"(known: {' '.join(sorted(known))})"
                )
    return len(utts)


def _backup_set(d: Path) -> Path:
    """The folder for this run's originals: ``<dir>/.backup/<N>/``, N one more than the last run's.

    ``.backup/`` itself also holds the latest run's originals (Kaldi's layout); a ``.backup/`` of
    files from before numbered backups existed is first kept as ``.backup/1/``."""
    backup = d / ".backup"
    backup.mkdir(exist_ok=True)
    numbered = [int(p.name) for p in backup.iterdir() if p.is_dir() and p.name.isdigit()]
    loose = [p for p in backup.iterdir() if p.is_file()]
    if loose and not numbered:
        (backup / "1").mkdir()
        for p in loose:
            shutil.copy2(p, backup / "1" / p.name)
        numbered = [1]
    for p in loose:  # the top level mirrors the newest set only
        p.unlink()
    out = backup / str(max(numbered, default=0) + 1)
    out.mkdir()
    return out


def _backup(d: Path, name: str, into: Path) -> None:
    shutil.copy2(d / name, into / name)
    shutil.copy2(d / name, d / ".backup" / name)


def fix_data_dir(
    data_dir: Path | str,
    utt_extra_files: Iterable[str] = (),
    spk_extra_files: Iterable[str] = (),
) -> Tuple[int, int]:
    """Sort every file, keep the utterances present in all per-utterance files
    (and with audio), drop speakers left without utterances, regenerate ``spk2utt``.

    ``utt_extra_files`` and ``spk_extra_files`` name further files of the
    directory, keyed by utterance and by speaker (e.g. ``utt2lang``,
    ``spk2age``): as in Kaldi they are sorted and filtered to the kept
    utterances and speakers but do not decide which are kept; one that does
    not exist is skipped.

    Every other per-utterance file (Kaldi's ``utt2uniq``, ``utt2lang``, ``vad.scp`` and any
    ``utt2<name>`` file, see :func:`extra_utt_files`) is treated as an ``utt_extra_files`` file
    without being named.

    Originals are kept: run N copies the files it rewrites to ``<dir>/.backup/N/``
    (1, 2, ... per run, never overwritten), and ``<dir>/.backup/`` itself holds the
    latest run's originals (Kaldi's layout). Every dropped utterance is
    logged. Returns ``(kept, dropped)`` utterance counts.

    Every file is read before anything is written, through :func:`read_entries`: a file
    that is malformed, not UTF-8 (Latin-1, say) or starts with a UTF-8 byte-order mark
    (BOM) is refused with an error naming file and line (for a BOM, how to strip it) and
    the directory is left as it was. A BOM is refused rather than stripped: it would
    otherwise become part of the first key, and that utterance would be dropped as
    missing from the other files.
    """
    d = Path(data_dir)
    if not d.is_dir():
        raise DataDirError(f"{d}: not a directory")
    names = present_files(d, PER_UTT_FILES)
    tables: Dict[str, Dict[str, str]] = {}
    if "utt2spk" not in names:
        if not (d / "spk2utt").is_file():
            raise DataDirError(f"{d}: neither utt2spk nor spk2utt")
        tables["utt2spk"] = spk2utt_to_utt2spk(read_spk2utt(d / "spk2utt"))
        for utt, spk in tables["utt2spk"].items():
            check_key(utt, f"{d}/spk2utt (utterance of speaker '{spk}')")
    for n in names:
        entries = read_entries(d / n)
        check_keys(entries, d / n)
        tables[n] = {e.key: e.value for e in entries}
    wav = read_kv(d / "wav.scp") if (d / "wav.scp").is_file() else None
    spk_tables = {n: read_kv(d / n) for n in present_files(d, PER_SPK_FILES)}
    known = {"utt2spk", "spk2utt", "wav.scp", *PER_UTT_FILES, *PER_SPK_FILES}
    extras: Dict[str, Dict[str, str]] = {}
    extra_plan: List[Tuple[str, bool]] = []  # (file, keyed by utterance)
    for names_, by_utt in (([*utt_extra_files, *extra_utt_files(d)], True), (list(spk_extra_files), False)):
        for n in dict.fromkeys(names_):
            if n in known or not (d / n).is_file():
                continue
            if n not in extras:
                extras[n] = read_kv(d / n, allow_empty_value=True)
            extra_plan.append((n, by_utt))
    utts = set(tables["utt2spk"])
    for table in tables.values():
        utts &= set(table)
    segments = tables.get("segments")
    if wav is not None:
        if segments is not None:
            utts = {u for u in utts if segments[u].split()[0] in wav}
        else:
            utts &= set(wav)
    before = set(tables["utt2spk"])
    for table in tables.values():
        before |= set(table)
    dropped = sorted(before - utts)
    for utt in dropped[:20]:
        logging.warning("fix_data_dir %s: dropping utterance '%s' (missing from some file)", d, utt)
    if len(dropped) > 20:
        logging.warning("fix_data_dir %s: ... and %d more", d, len(dropped) - 20)
    bset = _backup_set(d)
    for n, table in tables.items():
        if (d / n).is_file():
            _backup(d, n, bset)
        write_kv(d / n, {u: v for u, v in table.items() if u in utts})
    utt2spk = {u: tables["utt2spk"][u] for u in utts}
    if (d / "spk2utt").is_file():
        _backup(d, "spk2utt", bset)
    write_spk2utt(d / "spk2utt", utt2spk_to_spk2utt(utt2spk))
    if wav is not None:
        keep = {segments[u].split()[0] for u in utts} if segments is not None else utts
        _backup(d, "wav.scp", bset)
        write_kv(d / "wav.scp", {k: v for k, v in wav.items() if k in keep})
    spks = set(utt2spk.values())
    for n, table in spk_tables.items():
        _backup(d, n, bset)
        write_kv(d / n, {k: v for k, v in table.items() if k in spks})
    backed_up = set()
    for n, by_utt in extra_plan:
        keep_keys = utts if by_utt else spks
        if n not in backed_up:
            _backup(d, n, bset)
            backed_up.add(n)
        extras[n] = {k: v for k, v in extras[n].items() if k in keep_keys}
        write_kv(d / n, extras[n])
    logging.info("fix_data_dir %s: kept %d utterances, dropped %d", d, len(utts), len(dropped))
    return len(utts), len(dropped)


#: Top-level files of a destination that a copy replaces: the data files it may write, and any
#: other file of those kinds left from earlier contents (removed, each logged, see :func:`_clear_stale`).
_DATA_FILE_RE = re.compile(r"(utt2|spk2|reco2)[A-Za-z0-9_]+|[A-Za-z0-9_.-]+\.scp|text|segments|frame_shift"
                           r"|emotions\.txt|labels\.txt|cmvn[A-Za-z0-9_.]*\.ark|"
                           + "|".join(map(re.escape, UTT_LIST_FILES)))


def _prepare_dst(dst: Path, tool: str) -> None:
    """Refuse a destination that exists and is not a data directory (an unrelated non-empty folder)."""
    if dst.exists() and not dst.is_dir():
        raise DataDirError(f"{tool}: destination {dst} exists and is not a directory")
    if dst.is_dir() and any(dst.iterdir()) and not (dst / "utt2spk").is_file():
        raise DataDirError(f"{tool}: destination {dst} is a non-empty directory without utt2spk, not a data "
                           f"directory; give an empty or new destination")
    dst.mkdir(parents=True, exist_ok=True)


def _clear_stale(dst: Path, written: Iterable[str], tool: str) -> None:
    """Remove the data files of ``dst`` this copy did not write (left from earlier contents), so that
    the destination holds exactly what was derived from the source. Sub-folders are left alone."""
    keep = set(written)
    for p in sorted(dst.iterdir()):
        if p.is_file() and p.name not in keep and _DATA_FILE_RE.fullmatch(p.name):
            logging.warning("%s: removing stale %s (not derived from this source)", tool, p)
            p.unlink()


def _copy_filtered(
    src: Path,
    dst: Path,
    keep_utt: Callable[[str], bool],
    rename_utt: Callable[[str], str] = lambda u: u,
    rename_spk: Callable[[str], str] = lambda s: s,
    tool: str = "copy_data_dir",
) -> int:
    """Copy ``src`` to ``dst`` keeping utterances for which ``keep_utt`` holds.

    Every per-utterance file is carried (:data:`PER_UTT_FILES` and :func:`extra_utt_files`),
    as are per-speaker files, ``wav.scp`` and the label lists. ``dst`` may not be ``src`` or
    nested with it; an existing ``dst`` must be a data directory, and its files that this copy
    does not write (e.g. a stale ``feats.scp``) are removed: it ends up with exactly the
    files derived from ``src``."""
    check_not_nested(src, dst, tool)
    if not (src / "utt2spk").is_file():
        raise DataDirError(f"{src}/utt2spk: no such file")
    utt2spk_entries = read_entries(src / "utt2spk")
    check_keys(utt2spk_entries, src / "utt2spk")
    line_of = {e.key: e.lineno for e in utt2spk_entries}
    utt2spk = {e.key: e.value for e in utt2spk_entries}
    utts = [u for u in utt2spk if keep_utt(u)]
    keep = set(utts)
    new_utt = {}
    for u in utts:
        new_utt[u] = check_key(rename_utt(u), f"{src}/utt2spk:{line_of[u]} (renamed '{u}')")
        check_key(rename_spk(utt2spk[u]), f"{src}/utt2spk:{line_of[u]} (speaker '{utt2spk[u]}', renamed)")
    out_files: Dict[str, Dict[str, str]] = {}
    per_utt = present_files(src, PER_UTT_FILES)
    for name in [*per_utt, *extra_utt_files(src)]:
        entries = read_entries(src / name, allow_empty_value=None if name in per_utt else True)
        check_keys(entries, src / name)
        out = {}
        for e in entries:
            if e.key not in keep:
                continue
            out[new_utt[e.key]] = rename_spk(e.value) if name == "utt2spk" else e.value
        out_files[name] = out
    new_utt2spk = {new_utt[u]: rename_spk(utt2spk[u]) for u in utts}
    if (src / "wav.scp").is_file():
        wav_entries = read_entries(src / "wav.scp")
        check_keys(wav_entries, src / "wav.scp")
        wav = {e.key: e.value for e in wav_entries}
        if (src / "segments").is_file():
            segments = read_kv(src / "segments")
            recos = {segments[u].split()[0] for u in utts}
            out_files["wav.scp"] = {k: v for k, v in wav.items() if k in recos}
        else:
            out_files["wav.scp"] = {new_utt[u]: wav[u] for u in utts}
    spks = {utt2spk[u] for u in utts}
    for name in present_files(src, PER_SPK_FILES):
        table = read_kv(src / name)
        out_files[name] = {rename_spk(s): v for s, v in table.items() if s in spks}
    _prepare_dst(dst, tool)
    for name, table in out_files.items():
        write_kv(dst / name, table)
    write_spk2utt(dst / "spk2utt", utt2spk_to_spk2utt(new_utt2spk))
    written = [*out_files, "spk2utt"]
    for extra in ("emotions.txt", "labels.txt"):
        if (src / extra).is_file():
            shutil.copy2(src / extra, dst / extra)
            written.append(extra)
    _clear_stale(dst, written, tool)
    return len(utts)


def read_utt_lengths(data_dir: Path | str) -> Optional[Tuple[Dict[str, float], str]]:
    """Utterance lengths from the directory's own files: ``utt2dur`` (seconds),
    else ``utt2num_frames`` (frames), else ``segments`` (end - start); ``None``
    when it has none of them. Returns ``(lengths, name of the file read)``."""
    d = Path(data_dir)
    for name in ("utt2dur", "utt2num_frames"):
        if (d / name).is_file():
            lengths = {}
            for e in read_entries(d / name):
                try:
                    lengths[e.key] = float(e.value)
                except ValueError:
                    raise DataDirError(f"{d}/{name}:{e.lineno}: not a number: '{e.value}'") from None
            return lengths, name
    if (d / "segments").is_file():
        lengths = {}
        for e in read_entries(d / "segments"):
            fields = e.value.split()
            try:
                lengths[e.key] = float(fields[2]) - float(fields[1])
            except (IndexError, ValueError):
                raise DataDirError(f"{d}/segments:{e.lineno}: expected 'utt reco start end'") from None
        return lengths, "segments"
    return None


def _evenly_spaced(items: Sequence[str], n: int) -> List[str]:
    """``n`` items spread evenly over ``items`` (the first one included), in order."""
    total = len(items)
    return [items[i * total // n] for i in range(n)]


def subset_data_dir(
    src: Path | str,
    dst: Path | str,
    utt_list: Optional[Iterable[str]] = None,
    spk_list: Optional[Iterable[str]] = None,
    first: Optional[int] = None,
    *,
    last: Optional[int] = None,
    shortest: Optional[int] = None,
    evenly: Optional[int] = None,
    per_spk: Optional[int] = None,
    lengths: Optional[Mapping[str, float]] = None,
) -> int:
    """Copy the utterances selected by exactly one of:

    * ``utt_list``: these utterances; ``spk_list``: all utterances of these speakers;
    * ``first`` / ``last``: the first / last N utterances in sorted order;
    * ``shortest``: the N shortest utterances by ``lengths`` (utterance ->
      length in any unit; default :func:`read_utt_lengths`), ties in sorted order;
    * ``evenly``: N utterances spread evenly over the sorted list (the
      deterministic pick of Kaldi's ``subset_data_dir.sh <src> <N> <dst>``);
    * ``per_spk``: up to N utterances of every speaker, spread evenly over
      its sorted utterances (all of them when it has N or fewer).

    A listed utterance or speaker that ``src`` lacks is an error naming it, as
    is asking ``first``, ``last``, ``shortest`` or ``evenly`` for more
    utterances than ``src`` has. ``dst`` may not be ``src`` or nested with it
    (refused before anything is written); an existing ``dst`` must be a data
    directory and ends up with exactly the files derived from ``src``: its
    other data files (a stale ``feats.scp``, ``utt2*``, ...) are removed, each
    logged. Every ``utt2*`` file is carried. Returns the number of utterances written.
    """
    src, dst = Path(src), Path(dst)
    counts = {"first": first, "last": last, "shortest": shortest, "evenly": evenly, "per_spk": per_spk}
    given = [k for k, v in {"utt_list": utt_list, "spk_list": spk_list, **counts}.items() if v is not None]
    if len(given) != 1:
        raise ValueError(f"give exactly one of utt_list, spk_list, {', '.join(counts)} (got {given or 'none'})")
    for name, n in counts.items():
        if n is not None and n <= 0:
            raise ValueError(f"{name} must be positive")
    if not (src / "utt2spk").is_file():
        raise DataDirError(f"{src}/utt2spk: no such file")
    utt2spk = read_kv(src / "utt2spk")
    sorted_utts = sorted(utt2spk)
    n_wanted = first if first is not None else last if last is not None else shortest if shortest is not None \
        else evenly
    if n_wanted is not None and n_wanted > len(sorted_utts):
        raise DataDirError(
            f"{src}/utt2spk: cannot take {n_wanted} utterances from {len(sorted_utts)} "
            f"(ask for at most {len(sorted_utts)})"
        )
    if utt_list is not None:
        wanted = set(utt_list)
        unknown = sorted(wanted - set(utt2spk))
        if unknown:
            raise DataDirError(f"{src}: no utterance '{unknown[0]}' ({len(unknown)} unknown in list)")
        keep = wanted.__contains__
    elif spk_list is not None:
        spks = set(spk_list)
        unknown = sorted(spks - set(utt2spk.values()))
        if unknown:
            raise DataDirError(f"{src}: no speaker '{unknown[0]}'")
        keep = lambda u: utt2spk[u] in spks  # noqa: E731
    else:
        if first is not None:
            chosen = sorted_utts[:first]
        elif last is not None:
            chosen = sorted_utts[-last:]
        elif evenly is not None:
            chosen = _evenly_spaced(sorted_utts, evenly)
        elif per_spk is not None:
            chosen = []
            for utts in utt2spk_to_spk2utt(utt2spk).values():
                stride = max(1, len(utts) // per_spk)
                chosen.extend(utts[::stride][:per_spk])
        else:
            assert shortest is not None
            if lengths is None:
                found = read_utt_lengths(src)
                if found is None:
                    raise DataDirError(
                        f"{src}: no utt2dur, utt2num_frames or segments to find the shortest utterances "
                        f"(speechser-format-audio writes utt2dur)"
                    )
                lengths = found[0]
            missing = [u for u in sorted_utts if u not in lengths]
            if missing:
                raise DataDirError(f"{src}: no length for utterance '{missing[0]}' ({len(missing)} without one)")
            chosen = sorted(sorted_utts, key=lambda u: lengths[u])[:shortest]
        keep = set(chosen).__contains__
    return _copy_filtered(src, dst, keep, tool="subset_data_dir")


def copy_data_dir(
    src: Path | str,
    dst: Path | str,
    utt_prefix: str = "",
    utt_suffix: str = "",
    spk_prefix: str = "",
    spk_suffix: str = "",
) -> int:
    """Copy a data directory, optionally renaming utterances and speakers.

    With a ``segments`` file, recording ids are kept unchanged. Keys are
    re-sorted after renaming; a renamed id must still be legal (:func:`check_key`).
    ``dst`` may not be ``src`` or nested with it, and ends up with exactly the
    files derived from ``src`` (see :func:`_copy_filtered`).
    """
    return _copy_filtered(
        Path(src),
        Path(dst),
        lambda u: True,
        rename_utt=lambda u: f"{utt_prefix}{u}{utt_suffix}",
        rename_spk=lambda s: f"{spk_prefix}{s}{spk_suffix}",
        tool="copy_data_dir",
    )


def combine_data(dst: Path | str, srcs: Sequence[Path | str], extra_files: Iterable[str] = ()) -> int:
    """Concatenate data directories; a key found in two sources is an error
    (for per-speaker files and ``extra_files``, only with different values).

    A per-utterance file is written only if every source has it (a partial
    file would break the key-set invariant); skipped files are logged. So are
    ``extra_files``, further files to concatenate (e.g. ``spk2age``); every
    ``utt2<name>`` file (:func:`extra_utt_files`) is combined without being named.
    ``dst`` may not be one of the sources or nested with one; it ends up with
    exactly the combined files (stale ones from earlier contents are removed).
    """
    dst = Path(dst)
    srcs = [Path(s) for s in srcs]
    if not srcs:
        raise ValueError("combine_data needs at least one source")
    for s in srcs:
        check_not_nested(s, dst, "combine_data")
    for s in srcs:
        if not (s / "utt2spk").is_file():
            raise DataDirError(f"{s}/utt2spk: no such file")
    names = ["wav.scp", *PER_UTT_FILES, *PER_SPK_FILES]
    found_utt = sorted({n for s in srcs for n in extra_utt_files(s)})
    extras = [n for n in dict.fromkeys([*extra_files, *found_utt]) if n not in names and n != "spk2utt"]
    names += extras
    _prepare_dst(dst, "combine_data")
    written: List[str] = []
    n_utts = 0
    for name in names:
        have = [s for s in srcs if (s / name).is_file()]
        if not have:
            continue
        if len(have) != len(srcs):
            if name in PER_SPK_FILES and name != "cmvn.scp":
                pass
            else:
                lacking = next(s for s in srcs if s not in have)
                logging.warning("combine_data: not writing %s (%s lacks it)", name, lacking)
                continue
        merged: Dict[str, str] = {}
        origin: Dict[str, Path] = {}
        for s in have:
            entries = read_entries(s / name, allow_empty_value=True if name in extras else None)
            check_keys(entries, s / name)
            for k, v in ((e.key, e.value) for e in entries):
                if k in merged:
                    if (name in PER_SPK_FILES or name in extras) and merged[k] == v:
                        continue
                    raise DataDirError(f"combine_data: key '{k}' of {name} is in both {origin[k]} and {s}")
                merged[k] = v
                origin[k] = s
        write_kv(dst / name, merged)
        written.append(name)
        if name == "utt2spk":
            n_utts = len(merged)
            write_spk2utt(dst / "spk2utt", utt2spk_to_spk2utt(merged))
            written.append("spk2utt")
    _clear_stale(dst, written, "combine_data")
    return n_utts


def split_scp(
    scp: Path | str,
    outputs: Sequence[Path | str],
    utt2spk: Optional[Path | str] = None,
) -> None:
    """Split an scp (any ``key value`` file) into ``len(outputs)`` contiguous
    pieces of near-equal line counts, keeping file order.

    With ``utt2spk``, all utterances of one speaker go to the same piece (as
    Kaldi's ``split_scp.pl --utt2spk``). An output left empty is an error: ask
    for fewer pieces.
    """
    entries = read_entries(scp, allow_empty_value=True)
    n = len(outputs)
    if n < 1:
        raise ValueError("need at least one output")
    groups: List[List[Entry]] = []
    if utt2spk is not None:
        u2s = read_kv(utt2spk)
        for e in entries:
            if e.key not in u2s:
                raise DataDirError(f"{scp}:{e.lineno}: utterance '{e.key}' not in {utt2spk}")
            if groups and u2s[groups[-1][-1].key] == u2s[e.key]:
                groups[-1].append(e)
            else:
                groups.append([e])
    else:
        groups = [[e] for e in entries]
    if len(groups) < n:
        raise DataDirError(f"{scp}: cannot split {len(groups)} group(s) into {n} non-empty pieces")
    total = sum(len(g) for g in groups)
    pieces: List[List[Entry]] = [[] for _ in range(n)]
    done = 0
    gi = 0
    for i in range(n):
        target = round(total * (i + 1) / n)
        remaining_pieces = n - i - 1
        while gi < len(groups) and (
            not pieces[i] or (done + len(groups[gi]) <= target and len(groups) - gi > remaining_pieces)
        ):
            pieces[i].extend(groups[gi])
            done += len(groups[gi])
            gi += 1
    pieces[-1].extend(e for g in groups[gi:] for e in g)
    for out, piece in zip(outputs, pieces):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        with open(out, "w", encoding="utf-8") as f:
            for e in piece:
                f.write(f"{e.key} {e.value}\n" if e.value else f"{e.key}\n")


def filter_scp(
    id_list: Path | str,
    scp: Path | str,
    field: int = 1,
    exclude: bool = False,
) -> Iterable[str]:
    """Yield the lines of ``scp`` whose ``field``-th field (1-based) is (or with
    ``exclude`` is not) the first field of a line of ``id_list``; order of ``scp``."""
    ids = set()
    with open(id_list, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                ids.add(line.split()[0])
    with open(scp, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            fields = line.split()
            if len(fields) < field:
                raise DataDirError(f"{scp}:{lineno}: fewer than {field} field(s)")
            if (fields[field - 1] in ids) != exclude:
                yield line.rstrip("\n")
