"""openSMILE feature sets as a front-end (the ``opensmile`` package on PyPI, its own binary; issue 14).

Feature sets ``eGeMAPSv02`` (88 functionals, 25 low-level descriptors) and ``ComParE_2016`` (6,373
functionals, 65 descriptors), at two levels: ``functionals`` (one ``(1, D)`` matrix per utterance, the
set's statistics over the whole utterance) and ``lld`` (the frame-level low-level descriptors ``(T, D)``,
10 ms apart). The values are the package's own (``opensmile.Smile.process_signal`` on the 16 kHz
waveform the audio stage wrote), stored Kaldi-style like the filterbanks, so the per-speaker and global
normalization statistics, folds and datasets work unchanged.

Beside each archive ``<prefix>.ark``, ``<prefix>.opensmile.json`` records the set, the level and the
feature names; :func:`read_opensmile_options` reads them back (a directory whose archives disagree is
an error). Bad input: empty audio, a signal too short for one frame, or non-finite values are errors
naming the utterance. Clipped audio is a counted skip: an utterance with more than
``max_clipped_fraction`` of its samples at full scale (``|x| >= CLIP_LEVEL``) is left out of the archive,
logged and listed in ``<prefix>.skipped`` (its voice-quality descriptors, jitter, shimmer and the
harmonic ratios, would describe the clipping, not the voice); ``utils/make_fbank.sh`` then drops it from
the data directory. Emo-DB's worst file has 0.02 % of its samples at full scale.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Optional

import numpy as np

from speechser.features.extract import SkipUtterance, archive_settings, options_path, write_feature_archive
from speechser.io.datadir import DataDirError

FEATURE_SETS = ("eGeMAPSv02", "ComParE_2016")
LEVELS = ("functionals", "lld")
OPTIONS_SUFFIX = ".opensmile.json"
#: A sample at or above this magnitude (of full scale 1.0) counts as clipped.
CLIP_LEVEL = 0.999


@dataclass(frozen=True)
class OpenSmileOptions:
    feature_set: str = "eGeMAPSv02"
    level: str = "functionals"
    sample_rate: int = 16000
    #: Skip an utterance with more than this fraction of its samples clipped (1.0: never skip).
    max_clipped_fraction: float = 0.01

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_clipped_fraction <= 1.0:
            raise ValueError(f"max_clipped_fraction must lie in [0, 1], got {self.max_clipped_fraction}")
        if self.feature_set not in FEATURE_SETS:
            raise ValueError(f"unknown openSMILE feature set '{self.feature_set}' ({', '.join(FEATURE_SETS)})")
        if self.level not in LEVELS:
            raise ValueError(f"unknown openSMILE level '{self.level}' ({', '.join(LEVELS)})")


def make_smile(opts: OpenSmileOptions) -> Any:
    """The ``opensmile.Smile`` extractor of ``opts``."""
    import opensmile

    level = opensmile.FeatureLevel.Functionals if opts.level == "functionals" else \
        opensmile.FeatureLevel.LowLevelDescriptors
    return opensmile.Smile(feature_set=getattr(opensmile.FeatureSet, opts.feature_set), feature_level=level)


def compute_opensmile(samples: np.ndarray, rate: int, smile: Any, key: str = "?",
                      max_clipped_fraction: float = 1.0) -> np.ndarray:
    """A waveform ``(S,)`` in [-1, 1] -> features ``(T, D)`` float32 (``T = 1`` for functionals). Raises
    :class:`SkipUtterance` when more than ``max_clipped_fraction`` of the samples are clipped."""
    x = np.asarray(samples, dtype=np.float32)
    if x.size == 0:
        raise ValueError(f"utterance '{key}': empty audio")
    clipped = float(np.mean(np.abs(x) >= CLIP_LEVEL))
    if clipped > max_clipped_fraction:
        raise SkipUtterance(f"{100 * clipped:.2f} % of its samples are clipped (more than "
                            f"{100 * max_clipped_fraction:g} %)")
    feats = smile.process_signal(x, rate).to_numpy(dtype=np.float32)
    if feats.shape[0] == 0:
        raise ValueError(f"utterance '{key}': {x.size} samples are too short for one openSMILE frame")
    if not np.isfinite(feats).all():
        bad = int((~np.isfinite(feats)).sum())
        raise ValueError(f"utterance '{key}': openSMILE gave {bad} non-finite value(s) (clipped or silent audio?)")
    return feats


def extract_opensmile(data_dir: Path | str, out_prefix: Path | str, keys: Optional[Iterable[str]] = None,
                      opts: OpenSmileOptions = OpenSmileOptions(), skip_unreadable: bool = False) -> int:
    """Write ``<out_prefix>.ark``/``.scp``/``.num_frames`` and ``.opensmile.json`` for the utterances ``keys``
    (default: all, in ``utt2spk`` order). Returns the count. ``skip_unreadable``: see
    :func:`speechser.features.extract.write_feature_archive`."""
    smile = make_smile(opts)
    count, ark = write_feature_archive(
        data_dir, out_prefix, keys, opts.sample_rate,
        lambda key, samples, rate: compute_opensmile(samples, rate, smile, key, opts.max_clipped_fraction),
        "openSMILE", skip_unreadable)
    table = {"extractor": "opensmile", "feature_set": opts.feature_set, "level": opts.level,
             "sample_rate": opts.sample_rate, "max_clipped_fraction": opts.max_clipped_fraction,
             "feature_names": list(smile.feature_names)}
    options_path(ark, OPTIONS_SUFFIX).write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
    logging.info("wrote %d openSMILE %s %s matrices to %s", count, opts.feature_set, opts.level, ark)
    return count


def read_opensmile_options(data_dir: Path | str) -> Optional[Dict[str, Any]]:
    """The openSMILE settings of ``data_dir/feats.scp`` (set, level, sample rate, feature names), or None
    when its archives are not openSMILE features; archives that disagree are an error."""
    scp = Path(data_dir) / "feats.scp"
    found, n_arks = archive_settings(data_dir, OPTIONS_SUFFIX)
    if not found:
        return None
    if len(found) != n_arks or any(f != found[0] for f in found):
        raise DataDirError(f"{scp}: its archives were not all extracted with the same openSMILE settings")
    return found[0]
