"""A frozen pretrained encoder (Whisper, wav2vec 2.0, HuBERT, WavLM) as a front-end: its hidden states
computed once per utterance (:mod:`speechser.nets.ssl_frontend`) and stored Kaldi-style like the filterbanks,
so that folds, per-speaker normalization, training and packing treat them as any other features. This
module holds the options, the settings file and the checks; the encoder itself is a building block above it.

Levels:

- ``functionals``: per chosen hidden state ``h_l (T, D)`` its mean and standard deviation over the
  utterance's frames, concatenated over the states in order: one ``(1, 2 D |layers|)`` vector per
  utterance, read as ``|layers|`` blocks of ``2 D`` (``linear_ser``'s ``blocks`` choose among them on
  validation data).
- ``frames``: the chosen states side by side, ``(T, D |layers|)``, 20 ms apart.

``layers``: the hidden-state indices (0 = input of the first Transformer layer, L = the last layer's
output); empty: all ``L + 1``. Whisper runs on each utterance's own length unless ``window: padded``
(:mod:`speechser.nets.whisper_encoder`). The encoder runs in float32 in eval mode, one utterance at a time,
so an utterance's features do not depend on its neighbours.

Beside each archive ``<prefix>.ark``, ``<prefix>.ssl.json`` records the options and the encoder's identity
(the sha256 of its ``config.json`` and of its weights file): :func:`read_ssl_options` reads them back, and
archives that disagree are an error naming both.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from speechser.features.extract import archive_settings
from speechser.io.datadir import DataDirError

OPTIONS_SUFFIX = ".ssl.json"
#: The rate every supported encoder reads and its frames' hop: 20 ms (Whisper's 10-ms mel hop strided by 2,
#: the wav2vec 2.0 family's 320-sample convolutional stride).
SSL_SAMPLE_RATE = 16000
SSL_FRAME_SHIFT_MS = 20
LEVELS = ("functionals", "frames")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class SSLFeatureOptions:
    #: Hub name or local directory of the pretrained encoder.
    model: str = ""
    #: Hidden-state indices; empty: all.
    layers: List[int] = field(default_factory=list)
    level: str = "functionals"
    #: Whisper only: ``utterance`` or ``padded``.
    window: str = "utterance"
    sample_rate: int = 16000

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("the SSL front-end needs a model (a hub name or a local directory)")
        if self.level not in LEVELS:
            raise ValueError(f"unknown SSL feature level '{self.level}' ({', '.join(LEVELS)})")
        if self.sample_rate != 16000:
            raise ValueError(f"SSL encoders take 16 kHz audio, got sample_rate {self.sample_rate}")
        if any(int(x) < 0 for x in self.layers) or len(set(self.layers)) != len(self.layers):
            raise ValueError(f"layers must be distinct hidden-state indices >= 0, got {self.layers}")


def model_identity(model: str) -> Dict[str, str]:
    """``{"config_sha256", "weights_sha256"}`` of a local model directory (empty for a hub name); hashed once
    per process for each state of the files (their sizes and times), however many data directories ask."""
    path = Path(model)
    if not path.is_dir():
        return {}
    stamp = tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(path.iterdir()) if f.is_file())
    return dict(_hashed_identity(str(path.resolve()), stamp))


@functools.lru_cache(maxsize=8)
def _hashed_identity(path_text: str, stamp: tuple) -> Tuple[Tuple[str, str], ...]:
    path = Path(path_text)
    out = {}
    if (path / "config.json").is_file():
        out["config_sha256"] = hashlib.sha256((path / "config.json").read_bytes()).hexdigest()
    for name in WEIGHT_FILES:
        if (path / name).is_file():
            digest = hashlib.sha256()
            with open(path / name, "rb") as f:
                for piece in iter(lambda: f.read(1 << 20), b""):
                    digest.update(piece)
            out["weights_sha256"] = digest.hexdigest()
            break
    return tuple(sorted(out.items()))


def read_ssl_options(data_dir: Path | str) -> Optional[Dict[str, Any]]:
    """The SSL front-end settings of ``data_dir/feats.scp``, or None when its archives are not SSL features;
    archives extracted with different settings or encoders are an error naming both."""
    scp = Path(data_dir) / "feats.scp"
    found, n_arks = archive_settings(data_dir, OPTIONS_SUFFIX)
    if not found:
        return None
    other = next((f for f in found if f != found[0]), None)
    if len(found) != n_arks or other is not None:
        raise DataDirError(f"{scp}: its archives were not all extracted with the same SSL front-end "
                           f"({found[0].get('model')} states {found[0].get('layers')} and "
                           f"{(other or {}).get('model')} states {(other or {}).get('layers')})")
    return found[0]


def check_ssl_features(data_dir: Path | str, model: str, layers: List[int]) -> None:
    """Refuse SSL features of ``data_dir`` made by another encoder or with other hidden states than a
    config names (``model``: its hub name or directory; ``layers``: the states it expects, empty: all)."""
    found = read_ssl_options(data_dir)
    if found is None:
        return
    here = model_identity(model)
    theirs = found.get("model_identity", {})
    same_model = (here and here == theirs) or (not here and found.get("model") == model)
    if not same_model or (layers and list(layers) != list(found.get("layers", []))):
        raise DataDirError(f"{data_dir}/feats.scp: SSL features of {found.get('model')} (states "
                           f"{found.get('layers')}), but the config names {model} (states {layers or 'all'}): "
                           "extract the features again with the config's encoder (stage 3), or name theirs")
