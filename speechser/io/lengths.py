"""Utterance lengths of a data directory, from the cheapest source it has."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Tuple

from speechser.io.audio import AudioError, AudioReader
from speechser.io.datadir import DataDirError, read_entries, read_kv, read_utt_lengths


def utterance_lengths(data_dir: Path | str) -> Tuple[Dict[str, float], str]:
    """Length of every utterance, and the file it came from.

    In this order of preference: ``utt2dur`` (seconds), ``utt2num_frames``
    (frames), ``segments`` (end - start, seconds), ``feats.scp`` (frames of each
    matrix), the audio of ``wav.scp`` (seconds). Only one source is used, so
    the lengths are comparable with each other, not across directories.
    """
    d = Path(data_dir)
    found = read_utt_lengths(d)
    if found is not None:
        return found
    utts = list(read_kv(d / "utt2spk"))
    if (d / "feats.scp").is_file():
        import kaldiio

        lines = {e.key: e.lineno for e in read_entries(d / "feats.scp")}
        feats = kaldiio.load_scp(str(d / "feats.scp"))
        lengths = {}
        for utt in utts:
            if utt not in lines:
                raise DataDirError(f"{d}/feats.scp: no entry for utterance '{utt}'")
            try:
                lengths[utt] = float(feats[utt].shape[0])
            except Exception as err:  # kaldiio raises many kinds
                raise DataDirError(f"{d}/feats.scp:{lines[utt]}: cannot read '{utt}': {err}") from None
        return lengths, "feats.scp"
    if (d / "wav.scp").is_file():
        reader = AudioReader(d)
        lengths = {}
        for utt in utts:
            try:
                samples, rate = reader[utt]
            except AudioError as err:
                raise DataDirError(f"{d}/wav.scp: {err}") from None
            lengths[utt] = samples.shape[0] / rate
        return lengths, "wav.scp"
    raise DataDirError(
        f"{d}: no utt2dur, utt2num_frames, segments, feats.scp or wav.scp to measure utterances by"
    )
