"""Feature extraction over data directories into kaldiio ark/scp, and CMVN statistics."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, Iterable, Optional

import kaldiio
import numpy as np
from tqdm import tqdm

from speechser.features.fbank import FbankOptions, accumulate_cmvn, compute_fbank
from speechser.io.audio import AudioReader
from speechser.io.datadir import read_kv, read_spk2utt


def extract_fbank(
    data_dir: Path | str,
    out_prefix: Path | str,
    keys: Optional[Iterable[str]] = None,
    opts: FbankOptions = FbankOptions(),
) -> int:
    """Write ``<out_prefix>.ark`` and ``<out_prefix>.scp`` (and ``.num_frames``) for
    the utterances ``keys`` (default: all, in ``utt2spk`` order). Returns the count."""
    data_dir, out_prefix = Path(data_dir), Path(out_prefix)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    reader = AudioReader(data_dir, target_rate=opts.sample_rate)
    keys = list(keys) if keys is not None else list(read_kv(data_dir / "utt2spk"))
    ark = Path(f"{out_prefix}.ark").resolve()
    scp = Path(f"{out_prefix}.scp").resolve()
    lengths: Dict[str, int] = {}
    with kaldiio.WriteHelper(f"ark,scp:{ark},{scp}") as writer:
        for key in tqdm(keys, desc=f"fbank {out_prefix.name}", disable=None, leave=False):
            samples, rate = reader[key]
            feats = compute_fbank(samples, rate, opts)
            if feats.shape[0] == 0:
                raise ValueError(f"utterance '{key}': too short for a single frame")
            writer(key, feats)
            lengths[key] = feats.shape[0]
    with open(f"{out_prefix}.num_frames", "w", encoding="utf-8") as f:
        f.writelines(f"{k} {n}\n" for k, n in lengths.items())
    logging.info("wrote %d feature matrices to %s", len(keys), ark)
    return len(keys)


def compute_cmvn_stats(data_dir: Path | str, per_speaker: bool) -> Dict[str, np.ndarray]:
    """Kaldi-layout statistics over ``data_dir/feats.scp``: ``{"global": stats}``
    or one entry per speaker of ``spk2utt``."""
    data_dir = Path(data_dir)
    feats = kaldiio.load_scp(str(data_dir / "feats.scp"))
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
        ark = (data_dir / "cmvn_spk.ark").resolve()
        with kaldiio.WriteHelper(f"ark,scp:{ark},{(data_dir / 'cmvn.scp').resolve()}") as w:
            for spk in sorted(stats):
                w(spk, stats[spk])
        return data_dir / "cmvn.scp"
    path = Path(out) if out is not None else data_dir / "cmvn.ark"
    kaldiio.save_mat(str(path), stats["global"])
    return path
