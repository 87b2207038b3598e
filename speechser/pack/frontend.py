"""The feature front-end a model was trained on (:class:`speechser.features.front_end.FrontEnd`, recorded in
its experiment when training starts), stored in its packed archive as ``frontend.json`` and run again at
inference.

An ``ssl`` front-end's encoder directory is packed with the archive (members ``frontend_model.<file>``,
:mod:`speechser.pack.packed`) and its ``model`` set back to the restored folder when the archive is loaded.

:func:`extract_features` runs it over a data directory through the same code as the recipes' stage 3, so
that packed inference sees the features the model was trained on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

from speechser.features.extract import extract_fbank
from speechser.features.fbank import FbankOptions
from speechser.features.front_end import FrontEnd
from speechser.features.opensmile_feats import extract_opensmile
from speechser.features.ssl_feats import SSLFeatureOptions
from speechser.nets.ssl_frontend import extract_ssl


def extract_features(front_end: FrontEnd, data_dir: Path | str, out_prefix: Path | str,
                     keys: Optional[Iterable[str]] = None) -> int:
    """``front_end`` over the utterances of ``data_dir`` into ``<out_prefix>.ark``/``.scp``; an utterance
    that cannot be read or is too short is skipped, logged and listed in ``<out_prefix>.skipped``, as
    openSMILE's clipped audio always is. Returns the count written."""
    opts = front_end.typed()
    if isinstance(opts, FbankOptions):
        return extract_fbank(data_dir, out_prefix, keys, opts, skip_unreadable=True)
    if isinstance(opts, SSLFeatureOptions):
        return extract_ssl(data_dir, out_prefix, keys, opts, skip_unreadable=True)
    return extract_opensmile(data_dir, out_prefix, keys, opts, skip_unreadable=True)
