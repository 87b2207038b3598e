"""The tables of a data directory: keys, lines, reading and writing ``key value`` files, speaker maps."""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

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
