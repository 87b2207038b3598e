"""Audio formatting of a data directory: resample to one rate, mono 16-bit WAV, skip
empty and too-short utterances (logged and counted), write ``utt2dur``."""

from __future__ import annotations

import errno
import glob
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np
import soundfile
from tqdm import tqdm

from speechser.io.audio import AudioError, AudioReader, EmptyAudioError, TruncatedAudioError, speed_perturb
from speechser.io.datadir import (
    PER_SPK_FILES,
    PER_UTT_FILES,
    DataDirError,
    Entry,
    check_keys,
    check_not_nested,
    check_segment_bounds,
    copy_data_dir,
    extra_utt_files,
    read_entries,
    safe_key_filename,
    read_kv,
    write_kv,
    write_tables,
)
from speechser.io.process import pid_alive


class NoUtteranceLeft(AudioError):
    """Every utterance was skipped; ``skipped``: utterance -> reason."""

    def __init__(self, message: str, skipped: Dict[str, str]) -> None:
        super().__init__(message)
        self.skipped = skipped


class FormatWriteError(OSError):
    """The formatted output cannot be written (a full or read-only disk): the message names the
    output file or directory, the utterance and its source line, and what to do."""


def _write_reason(err: BaseException, directory: Path) -> str:
    """Why writing under ``directory`` failed, in words: the system's reason (never the path of a
    temporary file) and, where it can be told, whether the disk is full or the folder read-only."""
    if isinstance(err, OSError) and err.strerror:
        reason = err.strerror
    else:
        reason = getattr(err, "error_string", None) or type(err).__name__
    code = getattr(err, "errno", None)
    probe = directory
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        free = None
    if code in (errno.ENOSPC, errno.EDQUOT) or (free is not None and free < 1 << 20):
        reason += f" (the file system holding {directory} is full: {free if free is not None else '?'} bytes free)"
    elif code == errno.EROFS:
        reason += f" (the file system holding {directory} is read-only)"
    elif code in (errno.EACCES, errno.EPERM) or not os.access(probe, os.W_OK):
        reason += f" ({probe} is not writable)"
    return reason


def _write_wav(tmp_path: Path, final_path: Path, samples: np.ndarray, rate: int, utt: str, where: str) -> None:
    """Write 16-bit PCM ``samples`` to ``tmp_path`` (which becomes ``final_path``); a failure is a
    :class:`FormatWriteError` naming ``final_path``, its folder, the utterance and its source ``where``."""
    try:
        soundfile.write(str(tmp_path), samples, rate, subtype="PCM_16")
    except (OSError, RuntimeError, AssertionError) as err:
        raise FormatWriteError(
            f"cannot write the formatted audio of utterance '{utt}' ({where}) to {final_path}: "
            f"{_write_reason(err, final_path.parent)}; free space on that file system, or choose a writable "
            f"--audio-dir with room for the formatted audio"
        ) from None



def _remove_dead_builds(final: Path, kind: str) -> None:
    """Remove ``<final>.<kind>.<pid>`` folders left by a run that was killed (its process is gone)."""
    if not final.parent.is_dir():
        return
    for p in final.parent.glob(glob.escape(final.name) + f".{kind}.*"):
        pid = p.name[len(final.name) + len(kind) + 2:]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)) and p.is_dir():
            logging.warning("removing %s, left by an interrupted run (process %s is gone)", p, pid)
            shutil.rmtree(p, ignore_errors=True)


@dataclass(frozen=True)
class _Layout:
    """Where a formatting run writes: ``dst`` and ``audio`` are the final folders (resolved), built
    in the temporary siblings ``tmp_dst`` and ``tmp_audio`` (inside ``tmp_dst`` when ``audio`` is
    inside ``dst``, as stage 2 has it) and moved onto them only when everything has succeeded."""

    dst: Path
    audio: Path
    tmp_dst: Path
    tmp_audio: Path
    #: ``audio`` is outside ``dst``: built and moved into place on its own
    separate: bool


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _plan_output(src: Path, dst: Path, audio_dir: Path, wav_entries: Sequence[Entry],
                 out_names: Mapping[str, str]) -> _Layout:
    """Check the output places against the input, before anything is written, and name the temporary
    folders. Refused (:class:`DataDirError` naming the option, the path and what to do instead): an
    ``audio_dir`` holding source audio (a file of ``wav.scp``) or the source data directory, or
    holding the output directory; an output directory holding source audio; an existing output
    directory that formatting did not write (no ``format.log``), or an audio folder outside it holding files other than
    the formatted audio of this set (both are replaced as a whole)."""
    s, d, a = src.resolve(), dst.resolve(), audio_dir.resolve()
    for e in wav_entries:
        if e.value.strip().endswith("|"):
            continue
        source = Path(e.value.strip()).resolve()
        if _inside(source, a):
            raise DataDirError(
                f"--audio-dir {audio_dir}: it holds the source audio {e.value} ({src}/wav.scp:{e.lineno}), which "
                f"formatting would overwrite (the folder is replaced by the formatted audio); give an --audio-dir "
                f"of its own, outside the corpus's audio, e.g. {dst}/wav"
            )
        if _inside(source, d):
            raise DataDirError(
                f"output directory {dst}: it holds the source audio {e.value} ({src}/wav.scp:{e.lineno}), which "
                f"replacing it with the formatted data would delete; give another output directory"
            )
    if _inside(s, a):
        raise DataDirError(f"--audio-dir {audio_dir}: it is or holds the source data directory {src}; give an "
                           f"--audio-dir of its own, e.g. {dst}/wav")
    if d != a and _inside(d, a):
        raise DataDirError(f"--audio-dir {audio_dir}: it holds the output directory {dst}; give a folder inside "
                           f"the output directory (e.g. {dst}/wav) or beside it")
    for path, what in ((d, f"output directory {dst}"), (a, f"--audio-dir {audio_dir}")):
        if path.exists() and not path.is_dir():
            raise DataDirError(f"{what}: exists and is not a directory; remove it or give another path")
    pid = os.getpid()
    tmp_dst = d.with_name(f"{d.name}.new.{pid}")
    audio_inside = _inside(a, d)
    if d.is_dir() and not (d / "format.log").is_file():
        own = {a.relative_to(d).parts[0]} if audio_inside and a != d else set()
        foreign = sorted(p.name for p in d.iterdir() if p.name not in own)
        if foreign:
            raise DataDirError(
                f"output directory {dst}: exists, was not written by formatting (no format.log) and holds "
                f"'{foreign[0]}'; it would be replaced as a whole: give a new or empty output directory"
            )
    if audio_inside:
        return _Layout(d, a, tmp_dst, tmp_dst / a.relative_to(d), False)
    if a.is_dir():
        ours = set(out_names.values())
        try:
            ours |= {Path(v).name for v in read_kv(d / "wav.scp").values() if Path(v).parent == a}
        except (DataDirError, OSError):
            pass
        foreign = sorted(p.name for p in a.iterdir() if p.name not in ours or not p.is_file())
        if foreign:
            raise DataDirError(
                f"--audio-dir {audio_dir}: holds '{foreign[0]}', which is not formatted audio of {src}; the folder "
                f"is replaced as a whole by the formatted audio, so give an --audio-dir of its own, e.g. {dst}/wav"
            )
    return _Layout(d, a, tmp_dst, a.with_name(f"{a.name}.new.{pid}"), True)


def _swap_in(built: Sequence[Tuple[Path, Path]]) -> None:
    """Move each built folder onto its final place, ``(built, final)`` pairs with the data directory
    first: every existing final folder is first moved aside (so a run killed in between leaves the
    data directory missing, never pointing at audio of another run), then the built ones are moved
    in, the data directory last, and the old ones removed. On a failure the old folders are put back."""
    pid = os.getpid()
    aside: List[Tuple[Path, Path]] = []
    moved_in: List[Path] = []
    try:
        for _, final in built:
            if final.exists():
                old = final.with_name(f"{final.name}.old.{pid}")
                if old.exists():
                    shutil.rmtree(old)
                os.rename(final, old)
                aside.append((old, final))
        for tmp, final in reversed(built):
            os.rename(tmp, final)
            moved_in.append(final)
    except OSError:
        for final in moved_in:
            shutil.rmtree(final, ignore_errors=True)
        for old, final in aside:
            if not final.exists():
                os.rename(old, final)
        raise
    for old, _ in aside:
        shutil.rmtree(old, ignore_errors=True)


#: Audio whose peak stays below this level (dB relative to full scale) is warned about as silent.
SILENCE_DBFS = -60.0
SILENCE_PEAK = 10 ** (SILENCE_DBFS / 20)


@dataclass
class FormatReport:
    kept: int = 0
    skipped_empty: List[str] = field(default_factory=list)
    skipped_short: List[str] = field(default_factory=list)
    skipped_truncated: List[str] = field(default_factory=list)
    #: Audio that cannot be read, with the reason (only with ``skip_unreadable``: inference on a user's files).
    skipped_unreadable: Dict[str, str] = field(default_factory=dict)
    #: The skipped short utterances' durations and the minimum they missed (seconds), for the reasons.
    short_seconds: Dict[str, float] = field(default_factory=dict)
    min_duration: float = 0.0
    #: Kept utterances that are silent or nearly (peak below :data:`SILENCE_DBFS`): warned, as their labels
    #: or transcripts mean little.
    silent: List[str] = field(default_factory=list)

    def summary(self) -> str:
        out = (f"kept {self.kept}, skipped {len(self.skipped_empty)} empty and "
               f"{len(self.skipped_short)} shorter than the minimum")
        out += f", {len(self.skipped_truncated)} truncated" if self.skipped_truncated else ""
        out += f", {len(self.skipped_unreadable)} unreadable" if self.skipped_unreadable else ""
        return out + (f"; {len(self.silent)} kept are silent or nearly" if self.silent else "")

    def skipped(self) -> Dict[str, str]:
        """Every skipped utterance -> the reason."""
        out = {u: "empty audio" for u in self.skipped_empty}
        out.update({u: (f"{self.short_seconds[u]:.3f} s, shorter than the minimum duration {self.min_duration:g} s"
                        if u in self.short_seconds else "shorter than the minimum duration")
                    for u in self.skipped_short})
        out.update({u: "truncated audio" for u in self.skipped_truncated})
        out.update(self.skipped_unreadable)
        return out


def format_data_dir(
    src: Path | str,
    dst: Path | str,
    audio_dir: Path | str,
    rate: int = 16000,
    min_duration: float = 0.5,
    skip_truncated: bool = False,
    skip_unreadable: bool = False,
) -> FormatReport:
    """Write every utterance of ``src`` as a WAV file in ``audio_dir`` at ``rate``
    and a data directory ``dst`` pointing at them (segments are cut out).

    File names: ``<utt>.wav``, or for a key too long for a file name (over
    :data:`speechser.io.datadir.MAX_KEY_FILENAME_BYTES` bytes) its start and a sha1 of
    the whole key (:func:`speechser.io.datadir.safe_key_filename`); ``wav.scp`` says which.

    Policy: audio that cannot be read (missing, 0-byte, corrupt file, failing
    command) is an error naming ``wav.scp`` and its line; audio with no
    samples or shorter than ``min_duration`` seconds is skipped, each skip
    logged and counted in the returned report and in ``dst/format.log``. A
    file cut short (its header promises more samples than it holds) is an
    error too, unless ``skip_truncated``: then it is a logged, counted skip.
    ``skip_unreadable`` (inference on a user's files) skips unreadable audio
    the same way, with its reason (``FormatReport.skipped_unreadable``).

    Safety: every input file is read (and its encoding checked) and the output
    places are checked before anything is written. Refused, with an error naming
    the option, the path and what to give instead: ``dst`` that is ``src`` or
    nested with it, or holds source audio (a file of ``wav.scp``); an
    ``audio_dir`` that holds source audio, the source data directory or
    ``dst``; an existing, non-empty ``dst`` that an earlier formatting run did
    not write (it has no ``format.log``), or an existing
    ``audio_dir`` outside ``dst`` holding files other than formatted audio of
    this set (both are replaced as wholes). ``dst`` and ``audio_dir`` are built
    in temporary siblings ``<dst>.new.<pid>`` and ``<audio_dir>.new.<pid>`` (the
    audio inside the former when ``audio_dir`` is inside ``dst``, as stage 2 has
    it) and replace the old ones only when everything has succeeded: a failed or
    interrupted run leaves the previous output as it was (a run killed during
    the final moves leaves ``dst`` missing, never mixed), and the next run
    removes what a killed one left. A write that fails (a full or read-only
    disk) is a :class:`FormatWriteError` naming the output file, its folder, the
    utterance and its ``wav.scp`` line, never a temporary path.
    """
    src, dst, audio_dir = Path(src), Path(dst), Path(audio_dir)
    check_not_nested(src, dst, "format_data_dir")
    utt2spk_entries = read_entries(src / "utt2spk")
    check_keys(utt2spk_entries, src / "utt2spk")
    # every output file name is checked before the first file is written
    out_names = {e.key: safe_key_filename(e.key, f"{src}/utt2spk:{e.lineno}", ".wav") for e in utt2spk_entries}
    wav_entries = read_entries(src / "wav.scp")
    check_keys(wav_entries, src / "wav.scp")
    check_segment_bounds(src)
    # every input is read before anything is written: an undecodable file stops the run here
    utt_tables: Dict[str, Dict[str, str]] = {}
    for name in [*PER_UTT_FILES, *extra_utt_files(src)]:
        if name in ("segments", "feats.scp", "utt2num_frames", "utt2dur") or not (src / name).is_file():
            continue
        utt_tables[name] = read_kv(src / name, None if name in PER_UTT_FILES else True)
    spk_tables = {name: read_kv(src / name) for name in PER_SPK_FILES
                  if name != "cmvn.scp" and (src / name).is_file()}
    reader = AudioReader(src, target_rate=rate)
    layout = _plan_output(src, dst, audio_dir, wav_entries, out_names)
    _remove_dead_builds(layout.dst, "new")
    if layout.separate:
        _remove_dead_builds(layout.audio, "new")
    built = [(layout.tmp_dst, layout.dst)] + ([(layout.tmp_audio, layout.audio)] if layout.separate else [])
    try:
        for tmp, _ in built:
            if tmp.exists():
                shutil.rmtree(tmp)
        for tmp, final, what in ((layout.tmp_dst, layout.dst, f"the output directory {dst}"),
                                 (layout.tmp_audio, layout.audio, f"--audio-dir {audio_dir}")):
            try:
                tmp.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise FormatWriteError(
                    f"cannot create {what}: {_write_reason(err, final.parent)}; choose a writable place with room "
                    f"for the formatted audio"
                ) from None
        done = _format_audio(src, reader, utt2spk_entries, wav_entries, out_names, layout, rate, min_duration,
                             skip_truncated, skip_unreadable)
        try:
            _write_tables(src, layout.tmp_dst, done, utt_tables, spk_tables)
        except OSError as err:
            raise FormatWriteError(
                f"cannot write the output data directory {dst}: {_write_reason(err, layout.dst)}; free space on "
                f"that file system, or choose a writable output directory"
            ) from None
        try:
            _swap_in(built)
        except OSError as err:
            raise FormatWriteError(
                f"cannot move the formatted output into place at {dst} (and {audio_dir}): {err.strerror}; "
                f"the previous output is left as it was"
            ) from None
    except BaseException:
        for tmp, _ in built:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    _remove_dead_builds(layout.dst, "old")
    if layout.separate:
        _remove_dead_builds(layout.audio, "old")
    logging.info("format %s -> %s: %s", src, dst, done.report.summary())
    return done.report


@dataclass
class _Formatted:
    """What the audio loop made: the report, the input's ``utt2spk``, the new ``wav.scp`` and ``utt2dur``."""

    report: FormatReport
    utt2spk: Dict[str, str]
    wav: Dict[str, str]
    utt2dur: Dict[str, str]


def _format_audio(src: Path, reader: AudioReader, utt2spk_entries: Sequence[Entry], wav_entries: Sequence[Entry],
                  out_names: Mapping[str, str], layout: _Layout, rate: int, min_duration: float,
                  skip_truncated: bool, skip_unreadable: bool) -> _Formatted:
    """The audio loop of :func:`format_data_dir`: files go to ``layout.tmp_audio``, ``wav.scp`` names
    their final place in ``layout.audio``."""
    wav_lines = {e.key: e.lineno for e in wav_entries}
    segments = reader.segments
    out = _Formatted(FormatReport(), {e.key: e.value for e in utt2spk_entries}, {}, {})
    report = out.report
    for utt in tqdm(list(out.utt2spk), desc=f"format {src.name}", disable=None, leave=False):
        reco = segments[utt].reco if segments is not None and utt in segments else utt
        line = wav_lines.get(reco)
        where = f"{src}/wav.scp:{line}" if line else f"{src}/wav.scp"
        try:
            samples, _ = reader[utt]
        except EmptyAudioError:
            logging.warning("skip %s: empty audio (%s)", utt, where)
            report.skipped_empty.append(utt)
            continue
        except TruncatedAudioError as err:
            if not skip_truncated:
                raise AudioError(f"{where}: {err} (pass --skip-truncated to skip such files, counted)") from None
            logging.warning("skip %s: truncated audio (%s): %s", utt, where, err)
            report.skipped_truncated.append(utt)
            continue
        except AudioError as err:
            if not skip_unreadable:
                raise AudioError(f"{where}: {err}") from None
            logging.warning("skip %s: unreadable audio (%s): %s", utt, where, err)
            report.skipped_unreadable[utt] = str(err)
            continue
        duration = samples.shape[0] / rate
        if duration < min_duration:
            logging.warning("skip %s: %.3f s is shorter than %.3f s", utt, duration, min_duration)
            report.skipped_short.append(utt)
            report.short_seconds[utt] = duration
            report.min_duration = min_duration
            continue
        peak = float(np.max(np.abs(samples))) if samples.size else 0.0
        if peak < SILENCE_PEAK:
            level = f"{20 * np.log10(peak):.0f} dBFS" if peak > 0 else "digital silence"
            logging.warning("%s: silent or nearly (peak %s, %s): kept, but its label or transcript means little",
                            utt, level, where)
            report.silent.append(utt)
        final = layout.audio / out_names[utt]
        _write_wav(layout.tmp_audio / out_names[utt], final, samples, rate, utt, where)
        out.wav[utt] = str(final)
        out.utt2dur[utt] = f"{duration:.3f}"
        report.kept += 1
    if not out.wav:
        raise NoUtteranceLeft(f"{src}: no utterance left after formatting ({report.summary()})", report.skipped())
    return out


def _write_tables(src: Path, dst: Path, done: _Formatted, utt_tables: Mapping[str, Mapping[str, str]],
                  spk_tables: Mapping[str, Mapping[str, str]]) -> None:
    """The data files of :func:`format_data_dir` in ``dst``: the input's tables (read beforehand) cut
    to the kept utterances and their speakers, the new ``wav.scp`` and ``utt2dur``, ``format.log``."""
    keep = set(done.wav)
    kept_utt2spk = {u: s for u, s in done.utt2spk.items() if u in keep}
    spks = set(kept_utt2spk.values())
    tables: Dict[str, Mapping[str, str]] = {name: {k: v for k, v in table.items() if k in keep}
                                            for name, table in utt_tables.items()}
    tables.update({name: {k: v for k, v in table.items() if k in spks} for name, table in spk_tables.items()})
    tables.update({"wav.scp": done.wav, "utt2dur": done.utt2dur})
    write_tables(src, dst, tables, kept_utt2spk)
    report = done.report
    with open(dst / "format.log", "w", encoding="utf-8") as f:
        f.write(report.summary() + "\n")
        f.writelines(f"skipped_empty {u}\n" for u in report.skipped_empty)
        f.writelines(f"skipped_short {u}\n" for u in report.skipped_short)
        f.writelines(f"skipped_truncated {u}\n" for u in report.skipped_truncated)
        f.writelines(f"skipped_unreadable {u}\n" for u in report.skipped_unreadable)


def speed_perturb_data_dir(src: Path | str, dst: Path | str, audio_dir: Path | str, factor: float) -> int:
    """A speed-perturbed copy of a formatted data directory: utterances and
    speakers get the prefix ``sp<factor>-`` (perturbed speakers are new
    speakers, as in Kaldi), audio is written to ``audio_dir`` and ``utt2dur``
    is updated. Returns the number of utterances."""
    src, dst, audio_dir = Path(src), Path(dst), Path(audio_dir)
    prefix = f"sp{factor:g}-"
    entries = read_entries(src / "utt2spk")
    out_names = {e.key: safe_key_filename(prefix + e.key, f"{src}/utt2spk:{e.lineno}", ".wav") for e in entries}
    n = copy_data_dir(src, dst, utt_prefix=prefix, spk_prefix=prefix)
    audio_dir.mkdir(parents=True, exist_ok=True)
    reader = AudioReader(src)
    wav: Dict[str, str] = {}
    durs: Dict[str, str] = {}
    for utt in tqdm(list(out_names), desc=f"speed {factor:g}", disable=None, leave=False):
        samples, rate = reader[utt]
        out = speed_perturb(samples, rate, factor)
        path = (audio_dir / out_names[utt]).resolve()
        _write_wav(path, path, out, rate, prefix + utt, f"{src}/wav.scp")
        wav[prefix + utt] = str(path)
        durs[prefix + utt] = f"{out.shape[0] / rate:.3f}"
    write_kv(dst / "wav.scp", wav)
    write_kv(dst / "utt2dur", durs)
    for stale in ("feats.scp", "utt2num_frames", "cmvn.scp"):
        (dst / stale).unlink(missing_ok=True)
    return n
