"""Editing data directories: fix (keep the common utterances), subset, copy, combine."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from speechser.io.datadir.tables import (
    DataDirError,
    PER_SPK_FILES,
    PER_UTT_FILES,
    UTT_LIST_FILES,
    check_key,
    check_keys,
    check_not_nested,
    extra_utt_files,
    present_files,
    read_entries,
    read_kv,
    read_spk2utt,
    spk2utt_to_utt2spk,
    utt2spk_to_spk2utt,
    write_kv,
    write_spk2utt,
)



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


#: The label lists a data directory may carry (one label a line); every derived directory gets a copy.
LABEL_LISTS: Tuple[str, ...] = ("emotions.txt", "labels.txt")


def write_tables(src: Path, dst: Path, tables: Mapping[str, Mapping[str, str]], utt2spk: Mapping[str, str]
                 ) -> List[str]:
    """Write data directory ``dst`` derived from ``src``: each of ``tables`` (file name -> ``key value``
    table, already cut to the kept utterances and their speakers), ``spk2utt`` made from ``utt2spk``, and a
    copy of each of ``src``'s :data:`LABEL_LISTS`. The one writer of copy and subset
    (:func:`_copy_filtered`) and of audio formatting (``io/format.py``). Returns the names of the files written."""
    for name, table in tables.items():
        write_kv(dst / name, table)
    write_spk2utt(dst / "spk2utt", utt2spk_to_spk2utt(utt2spk))
    written = [*tables, "spk2utt"]
    for extra in LABEL_LISTS:
        if (src / extra).is_file():
            shutil.copy2(src / extra, dst / extra)
            written.append(extra)
    return written


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
    written = write_tables(src, dst, out_files, new_utt2spk)
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
