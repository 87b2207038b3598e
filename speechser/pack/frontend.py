"""The feature front-end a model was trained on, recorded in its packed archive and run again at inference.

A front-end is read from the settings file the feature stage writes beside each archive of a training set
(``<prefix>.fbank.json`` or ``<prefix>.opensmile.json``) and stored as ``frontend.json``:

    {"kind": "fbank", "options": {"num_mel_bins": 128, "frame_length_ms": 25.0, ...}}
    {"kind": "opensmile", "options": {"feature_set": "ComParE_2016", "level": "functionals", ...}}
    {"kind": "ssl", "options": {"model": "<dir>", "layers": [0, ..., 6], "level": "functionals", ...}}

An ``ssl`` front-end's encoder directory is packed with the archive (members ``frontend_model.<file>``,
:mod:`speechser.pack.packed`) and its ``model`` set back to the restored folder when the archive is loaded.

:func:`extract_features` runs it over a data directory through the same code as the recipes' stage 3, so
that packed inference sees the features the model was trained on.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Optional

from speechser.features.extract import extract_fbank, read_fbank_options
from speechser.features.fbank import FbankOptions
from speechser.features.opensmile_feats import OpenSmileOptions, extract_opensmile, read_opensmile_options
from speechser.features.ssl_feats import SSLFeatureOptions, read_ssl_options
from speechser.nets.ssl_frontend import extract_ssl

KINDS = ("fbank", "opensmile", "ssl")
OPTION_CLASSES = {"fbank": FbankOptions, "opensmile": OpenSmileOptions, "ssl": SSLFeatureOptions}


class FrontEndError(ValueError):
    """A front-end description that cannot be used (unknown kind, unknown option)."""


@dataclass(frozen=True)
class FrontEnd:
    """``kind``: ``fbank``, ``opensmile`` or ``ssl``; ``options``: the fields of :class:`FbankOptions`,
    :class:`OpenSmileOptions` or :class:`SSLFeatureOptions`."""

    kind: str
    options: Dict[str, Any]

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise FrontEndError(f"unknown front-end '{self.kind}' ({', '.join(KINDS)})")
        self.typed()  # unknown or out-of-range options fail here, when the archive is read

    def typed(self) -> FbankOptions | OpenSmileOptions | SSLFeatureOptions:
        cls = OPTION_CLASSES[self.kind]
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(self.options) - names)
        if unknown:
            raise FrontEndError(f"{self.kind} front-end: unknown option(s) {', '.join(unknown)}")
        try:
            return cls(**self.options)
        except (TypeError, ValueError) as err:
            raise FrontEndError(f"{self.kind} front-end: {err}") from None

    @property
    def sample_rate(self) -> int:
        return int(self.typed().sample_rate)

    def to_json(self) -> Dict[str, Any]:
        return {"kind": self.kind, "options": dict(self.options)}

    @staticmethod
    def from_json(table: Dict[str, Any]) -> "FrontEnd":
        if not isinstance(table, dict) or set(table) != {"kind", "options"}:
            raise FrontEndError(f"a front-end is {{'kind': ..., 'options': {{...}}}}, got {table!r}")
        return FrontEnd(str(table["kind"]), dict(table["options"]))


def front_end_of(data_dir: Path | str) -> FrontEnd:
    """The front-end the features of ``data_dir/feats.scp`` were extracted with (openSMILE settings when its
    archives have them, else the fbank settings; an archive without either is an error naming it)."""
    ssl = read_ssl_options(data_dir)
    if ssl is not None:
        fields = {f.name for f in dataclasses.fields(SSLFeatureOptions)}
        return FrontEnd("ssl", {k: v for k, v in ssl.items() if k in fields})
    smile = read_opensmile_options(data_dir)
    if smile is not None:
        fields = {f.name for f in dataclasses.fields(OpenSmileOptions)}
        return FrontEnd("opensmile", {k: v for k, v in smile.items() if k in fields})
    return FrontEnd("fbank", dataclasses.asdict(read_fbank_options(data_dir)))


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
