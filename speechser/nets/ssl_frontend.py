"""Running a frozen pretrained encoder over a data directory: the extraction behind
:mod:`speechser.features.ssl_feats` (options, settings file, checks) and ``speechser-compute-ssl``."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import torch

from speechser.features.extract import options_path, write_feature_archive
from speechser.features.ssl_feats import OPTIONS_SUFFIX, SSLFeatureOptions, model_identity


class SSLFeatureExtractor:
    """The frozen encoder of ``opts`` and the features it gives one utterance."""

    def __init__(self, opts: SSLFeatureOptions) -> None:
        from speechser.nets.ssl import SSLConfig, SSLEncoder

        self.opts = opts
        self.encoder = SSLEncoder(SSLConfig(name_or_path=opts.model, layer=-1, freeze_all=True,
                                            whisper_window=opts.window)).eval()
        self.num_states = self.encoder.num_layers + 1
        self.layers = list(opts.layers) or list(range(self.num_states))
        bad = [x for x in self.layers if x >= self.num_states]
        if bad:
            raise ValueError(f"layers {bad}: {opts.model} has hidden states 0..{self.num_states - 1}")
        self.dim = self.encoder.output_dim

    @torch.no_grad()
    def __call__(self, key: str, samples: np.ndarray, rate: int) -> np.ndarray:
        """``samples (S,)`` at 16 kHz -> ``(1, 2 D |layers|)`` (functionals) or ``(T, D |layers|)`` (frames)."""
        if rate != 16000:
            raise ValueError(f"utterance '{key}': {rate} Hz audio; the SSL front-end takes 16 kHz")
        x = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))[None]
        hidden, frames = self.encoder.hidden_states(x, torch.tensor([x.shape[1]]))
        t = int(frames[0])
        states = [hidden[i][0, :t].double() for i in self.layers]
        if self.opts.level == "frames":
            return torch.cat(states, dim=1).float().numpy()
        rows = [torch.cat([h.mean(0), h.std(0, unbiased=False)]) for h in states]
        return torch.cat(rows).float().numpy()[None]


def extract_ssl(data_dir: Path | str, out_prefix: Path | str, keys: Optional[Iterable[str]] = None,
                opts: SSLFeatureOptions = SSLFeatureOptions(model="?"), skip_unreadable: bool = False) -> int:
    """Write ``<out_prefix>.ark``/``.scp``/``.num_frames`` and ``.ssl.json`` for the utterances ``keys``
    (default: all); returns the count. ``skip_unreadable``: see
    :func:`speechser.features.extract.write_feature_archive`."""
    extractor = SSLFeatureExtractor(opts)
    count, ark = write_feature_archive(data_dir, out_prefix, keys, opts.sample_rate, extractor,
                                       f"SSL {opts.level}", skip_unreadable)
    table = {"extractor": "ssl", **asdict(opts), "layers": extractor.layers, "dim": extractor.dim,
             "num_states": extractor.num_states, "model_identity": model_identity(opts.model)}
    options_path(ark, OPTIONS_SUFFIX).write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
    logging.info("wrote %d SSL %s matrices (%s, states %s) to %s", count, opts.level, opts.model,
                 extractor.layers, ark)
    return count
