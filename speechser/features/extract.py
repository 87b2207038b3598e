"""Feature extraction over data directories into kaldiio ark/scp, and CMVN statistics."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import kaldiio
import numpy as np
from tqdm import tqdm

from speechser.features.fbank import FbankOptions, accumulate_cmvn, compute_fbank
from speechser.io.audio import AudioError, AudioReader
from speechser.io.datadir import DataDirError, check_key, check_keys, read_entries, read_kv, read_spk2utt

#: Beside each archive ``<prefix>.ark``, ``<prefix>.fbank.json`` records the front-end settings.
FBANK_OPTIONS_SUFFIX = ".fbank.json"
FBANK_EXTRACTOR = "torchaudio.compliance.kaldi.fbank"


def options_path(ark: Path | str, suffix: str) -> Path:
    """The settings file beside an archive: ``.../raw_fbank.1.ark`` -> ``.../raw_fbank.1<suffix>``."""
    ark = Path(ark)
    return ark.with_name((ark.name[:-4] if ark.name.endswith(".ark") else ark.name) + suffix)


def fbank_options_path(ark: Path | str) -> Path:
    """``.../raw_fbank.1.ark`` -> ``.../raw_fbank.1.fbank.json``."""
    return options_path(ark, FBANK_OPTIONS_SUFFIX)


def archive_of(value: str) -> Optional[str]:
    """The archive file of an ``scp`` value (``path.ark:offset``, ``path.ark:offset[slice]`` or ``path``);
    None for a pipe (``... |``), which has no file."""
    value = value.strip()
    if value.endswith("|"):
        return None
    if value.endswith("]") and "[" in value:
        value = value[: value.rindex("[")]
    head, sep, tail = value.rpartition(":")
    return head if sep and tail.isdigit() else value


def feature_archives(data_dir: Path | str) -> Dict[str, int]:
    """The archives ``data_dir/feats.scp`` points into (as it names them) -> the first line naming each, in
    order of first use."""
    scp = Path(data_dir) / "feats.scp"
    if not scp.is_file():
        raise DataDirError(f"{scp}: no such file (run the feature stage first)")
    arks: Dict[str, int] = {}
    for e in read_entries(scp):
        ark = archive_of(e.value)
        if ark is not None:
            arks.setdefault(ark, e.lineno)
    return arks


def archive_settings(data_dir: Path | str, suffix: str) -> Tuple[List[Dict[str, Any]], int]:
    """The settings files ``<archive><suffix>`` beside the archives ``data_dir/feats.scp`` points into, read
    (JSON), and the number of archives: a front-end's reader compares the two (see
    :func:`speechser.features.opensmile_feats.read_opensmile_options`)."""
    arks = feature_archives(data_dir)
    found = [json.loads(p.read_text(encoding="utf-8")) for p in (options_path(a, suffix) for a in arks) if p.is_file()]
    return found, len(arks)


class SkipUtterance(Exception):
    """Raised by a front-end's ``compute`` for an utterance it will not describe (say, heavily clipped audio):
    :func:`write_feature_archive` leaves it out, logs why, counts it and lists it in ``<prefix>.skipped``."""


def write_feature_archive(
    data_dir: Path | str,
    out_prefix: Path | str,
    keys: Optional[Iterable[str]],
    sample_rate: int,
    compute: Callable[[str, np.ndarray, int], np.ndarray],
    desc: str,
    skip_unreadable: bool = False,
) -> Tuple[int, Path]:
    """Read each utterance of ``keys`` (default: all, in ``utt2spk`` order) at ``sample_rate``, turn it into a
    ``(T, D)`` matrix with ``compute(key, samples, rate)``, and write ``<out_prefix>.ark``/``.scp`` and
    ``.num_frames``. An utterance whose ``compute`` raises :class:`SkipUtterance` is left out, logged, and
    listed with its reason in ``<out_prefix>.skipped``. With ``skip_unreadable`` (inference on a user's
    files) audio that cannot be read (:class:`AudioError`) and audio too short for the front-end
    (``ValueError``) are skipped the same way instead of stopping the run. Returns the count written and
    the archive's path (its settings file is the caller's)."""
    data_dir, out_prefix = Path(data_dir), Path(out_prefix)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    reader = AudioReader(data_dir, target_rate=sample_rate)
    if keys is None:
        entries = read_entries(data_dir / "utt2spk")
        check_keys(entries, data_dir / "utt2spk")
        keys = [e.key for e in entries]
    else:
        keys = [check_key(k, f"utterance list for {out_prefix}") for k in keys]
    ark = Path(f"{out_prefix}.ark").resolve()
    scp = Path(f"{out_prefix}.scp").resolve()
    lengths: Dict[str, int] = {}
    skipped: Dict[str, str] = {}
    skippable = (SkipUtterance, AudioError, ValueError) if skip_unreadable else SkipUtterance
    with kaldiio.WriteHelper(f"ark,scp:{ark},{scp}") as writer:
        for key in tqdm(keys, desc=f"{desc} {out_prefix.name}", disable=None, leave=False):
            try:
                samples, rate = reader[key]
                feats = compute(key, samples, rate)
            except skippable as why:
                logging.warning("skipping utterance '%s': %s", key, why)
                skipped[key] = str(why)
                continue
            writer(key, feats)
            lengths[key] = feats.shape[0]
    with open(f"{out_prefix}.num_frames", "w", encoding="utf-8") as f:
        f.writelines(f"{k} {n}\n" for k, n in lengths.items())
    with open(f"{out_prefix}.skipped", "w", encoding="utf-8") as f:
        f.writelines(f"{k} {why}\n" for k, why in skipped.items())
    if skipped:
        logging.warning("%s: skipped %d of %d utterance(s); listed in %s.skipped",
                        desc, len(skipped), len(keys), out_prefix)
    return len(lengths), ark


def write_fbank_options(ark: Path | str, opts: FbankOptions) -> Path:
    """Record the settings an archive was extracted with (see :func:`read_fbank_options`)."""
    path = fbank_options_path(ark)
    path.write_text(json.dumps({"extractor": FBANK_EXTRACTOR, **dataclasses.asdict(opts)}, indent=1) + "\n")
    return path


def read_fbank_options(data_dir: Path | str) -> FbankOptions:
    """The front-end settings of ``data_dir/feats.scp``: read from the ``<prefix>.fbank.json``
    that :func:`extract_fbank` writes beside each archive the scp points into; all must agree,
    so that features computed on the fly (augmented training) match the precomputed ones."""
    scp = Path(data_dir) / "feats.scp"
    arks = feature_archives(data_dir)
    found: Dict[str, FbankOptions] = {}
    for ark, lineno in arks.items():
        path = fbank_options_path(ark)
        if not path.is_file():
            raise DataDirError(f"{scp}:{lineno}: {path}: no such file (the front-end settings of '{ark}'; "
                               "re-run the feature stage to record them)")
        table = json.loads(path.read_text())
        if table.pop("extractor", FBANK_EXTRACTOR) != FBANK_EXTRACTOR:
            raise DataDirError(f"{path}: not written by {FBANK_EXTRACTOR}")
        try:
            found[str(path)] = FbankOptions(**table)
        except TypeError as err:
            raise DataDirError(f"{path}: {err}") from None
    if not found:
        raise DataDirError(f"{scp}: no features")
    distinct = set(found.values())
    if len(distinct) > 1:
        raise DataDirError(f"{scp}: its archives were extracted with different settings: "
                           + "; ".join(f"{p}: {o}" for p, o in found.items()))
    return distinct.pop()


def extract_fbank(
    data_dir: Path | str,
    out_prefix: Path | str,
    keys: Optional[Iterable[str]] = None,
    opts: FbankOptions = FbankOptions(),
    skip_unreadable: bool = False,
) -> int:
    """Write ``<out_prefix>.ark`` and ``<out_prefix>.scp`` (and ``.num_frames``, and the
    settings ``opts`` to ``.fbank.json``) for the utterances ``keys`` (default: all, in
    ``utt2spk`` order). Returns the count. ``skip_unreadable``: see :func:`write_feature_archive`."""
    def fbank(key: str, samples: np.ndarray, rate: int) -> np.ndarray:
        feats = compute_fbank(samples, rate, opts)
        if feats.shape[0] == 0:
            raise ValueError(f"utterance '{key}': too short for a single frame")
        return feats

    count, ark = write_feature_archive(data_dir, out_prefix, keys, opts.sample_rate, fbank, "fbank", skip_unreadable)
    write_fbank_options(ark, opts)
    logging.info("wrote %d feature matrices to %s", count, ark)
    return count


def stats_bytes(stats: np.ndarray) -> bytes:
    """Kaldi-layout statistics ``(2, D + 1)`` as the bytes of a ``.ark`` matrix file."""
    buf = io.BytesIO()
    kaldiio.save_mat(buf, stats)
    return buf.getvalue()


def compute_cmvn_stats(data_dir: Path | str, per_speaker: bool) -> Dict[str, np.ndarray]:
    """Kaldi-layout statistics over ``data_dir/feats.scp``: ``{"global": stats}``
    or one entry per speaker of ``spk2utt``."""
    data_dir = Path(data_dir)
    scp = data_dir / "feats.scp"
    if not scp.is_file():
        raise DataDirError(f"{scp}: no such file (CMVN statistics need features: run the feature stage first)")
    feats = kaldiio.load_scp(str(scp))
    lacking = [k for k in read_kv(data_dir / "utt2spk") if k not in feats]
    if lacking:
        raise DataDirError(f"{scp}: no features for {len(lacking)} utterance(s) of utt2spk, first '{lacking[0]}' "
                           "(utils/fix_data_dir.sh keeps the utterances that have them)")
    if not per_speaker:
        keys = list(read_kv(data_dir / "utt2spk"))
        return {"global": accumulate_cmvn(feats[k] for k in keys)}
    return {spk: accumulate_cmvn(feats[u] for u in utts) for spk, utts in read_spk2utt(data_dir / "spk2utt").items()}


def write_cmvn(data_dir: Path | str, per_speaker: bool, out: Optional[Path | str] = None) -> Path:
    """Write global statistics to ``out`` (default ``data_dir/cmvn.ark``) or
    per-speaker statistics to ``data_dir/cmvn_spk.ark`` with ``data_dir/cmvn.scp``."""
    data_dir = Path(data_dir)
    stats = compute_cmvn_stats(data_dir, per_speaker)
    if per_speaker:
        return write_speaker_cmvn(data_dir, stats)
    path = Path(out) if out is not None else data_dir / "cmvn.ark"
    kaldiio.save_mat(str(path), stats["global"])
    return path


def write_speaker_cmvn(data_dir: Path | str, stats: Dict[str, np.ndarray]) -> Path:
    """Per-speaker statistics (speaker -> Kaldi-layout matrix) into ``data_dir/cmvn_spk.ark`` and
    ``data_dir/cmvn.scp``; returns the scp."""
    data_dir = Path(data_dir)
    ark = (data_dir / "cmvn_spk.ark").resolve()
    with kaldiio.WriteHelper(f"ark,scp:{ark},{(data_dir / 'cmvn.scp').resolve()}") as w:
        for spk in sorted(stats):
            w(spk, stats[spk])
    return data_dir / "cmvn.scp"
