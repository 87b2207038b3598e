"""Audio formatting of a data directory: resample to one rate, mono 16-bit WAV, skip
empty and too-short utterances (logged and counted), write ``utt2dur``."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

import soundfile
from tqdm import tqdm

from speechser.io.audio import AudioError, AudioReader, EmptyAudioError, TruncatedAudioError, speed_perturb
from speechser.io.datadir import (
    PER_SPK_FILES,
    PER_UTT_FILES,
    check_keys,
    check_not_nested,
    check_segment_bounds,
    copy_data_dir,
    extra_utt_files,
    read_entries,
    safe_key_filename,
    read_kv,
    utt2spk_to_spk2utt,
    write_kv,
    write_spk2utt,
)


@dataclass
class FormatReport:
    kept: int = 0
    skipped_empty: List[str] = field(default_factory=list)
    skipped_short: List[str] = field(default_factory=list)
    skipped_truncated: List[str] = field(default_factory=list)
    #: Audio that cannot be read, with the reason (only with ``skip_unreadable``: inference on a user's files).
    skipped_unreadable: Dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        out = (f"kept {self.kept}, skipped {len(self.skipped_empty)} empty and "
               f"{len(self.skipped_short)} shorter than the minimum")
        out += f", {len(self.skipped_truncated)} truncated" if self.skipped_truncated else ""
        return out + (f", {len(self.skipped_unreadable)} unreadable" if self.skipped_unreadable else "")

    def skipped(self) -> Dict[str, str]:
        """Every skipped utterance -> the reason."""
        out = {u: "empty audio" for u in self.skipped_empty}
        out.update({u: "shorter than the minimum duration" for u in self.skipped_short})
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
    """Write every utterance of ``src`` as ``audio_dir/<utt>.wav`` at ``rate``
    and a data directory ``dst`` pointing at them (segments are cut out).

    Policy: audio that cannot be read (missing, 0-byte, corrupt file, failing
    command) is an error naming ``wav.scp`` and its line; audio with no
    samples or shorter than ``min_duration`` seconds is skipped, each skip
    logged and counted in the returned report and in ``dst/format.log``. A
    file cut short (its header promises more samples than it holds) is an
    error too, unless ``skip_truncated``: then it is a logged, counted skip.
    ``skip_unreadable`` (inference on a user's files) skips unreadable audio
    the same way, with its reason (``FormatReport.skipped_unreadable``).
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
    dst.mkdir(parents=True, exist_ok=True)
    audio_dir.mkdir(parents=True, exist_ok=True)
    reader = AudioReader(src, target_rate=rate)
    wav_lines = {e.key: e.lineno for e in wav_entries}
    segments = read_kv(src / "segments") if (src / "segments").is_file() else None
    utt2spk = {e.key: e.value for e in utt2spk_entries}
    report = FormatReport()
    new_wav: Dict[str, str] = {}
    utt2dur: Dict[str, str] = {}
    for utt in tqdm(list(utt2spk), desc=f"format {src.name}", disable=None, leave=False):
        reco = segments[utt].split()[0] if segments is not None else utt
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
            continue
        out = (audio_dir / out_names[utt]).resolve()
        soundfile.write(str(out), samples, rate, subtype="PCM_16")
        new_wav[utt] = str(out)
        utt2dur[utt] = f"{duration:.3f}"
        report.kept += 1
    keep = set(new_wav)
    if not keep:
        raise AudioError(f"{src}: no utterance left after formatting ({report.summary()})")
    for name in [*PER_UTT_FILES, *extra_utt_files(src)]:
        if name in ("segments", "feats.scp", "utt2num_frames", "utt2dur") or not (src / name).is_file():
            continue
        lenient = None if name in PER_UTT_FILES else True
        write_kv(dst / name, {k: v for k, v in read_kv(src / name, lenient).items() if k in keep})
    write_kv(dst / "wav.scp", new_wav)
    write_kv(dst / "utt2dur", utt2dur)
    kept_utt2spk = {u: s for u, s in utt2spk.items() if u in keep}
    write_spk2utt(dst / "spk2utt", utt2spk_to_spk2utt(kept_utt2spk))
    spks = set(kept_utt2spk.values())
    for name in PER_SPK_FILES:
        if name != "cmvn.scp" and (src / name).is_file():
            write_kv(dst / name, {k: v for k, v in read_kv(src / name).items() if k in spks})
    for extra in ("emotions.txt",):
        if (src / extra).is_file():
            shutil.copy2(src / extra, dst / extra)
    with open(dst / "format.log", "w", encoding="utf-8") as f:
        f.write(report.summary() + "\n")
        f.writelines(f"skipped_empty {u}\n" for u in report.skipped_empty)
        f.writelines(f"skipped_short {u}\n" for u in report.skipped_short)
        f.writelines(f"skipped_truncated {u}\n" for u in report.skipped_truncated)
        f.writelines(f"skipped_unreadable {u}\n" for u in report.skipped_unreadable)
    logging.info("format %s -> %s: %s", src, dst, report.summary())
    return report


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
        soundfile.write(str(path), out, rate, subtype="PCM_16")
        wav[prefix + utt] = str(path)
        durs[prefix + utt] = f"{out.shape[0] / rate:.3f}"
    write_kv(dst / "wav.scp", wav)
    write_kv(dst / "utt2dur", durs)
    for stale in ("feats.scp", "utt2num_frames", "cmvn.scp"):
        (dst / stale).unlink(missing_ok=True)
    return n
