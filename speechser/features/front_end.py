"""The feature front-end a set of features was extracted with: its description, read back from the settings
the feature stage writes beside each archive of a data directory (``<prefix>.fbank.json``,
``<prefix>.opensmile.json``, ``<prefix>.ssl.json``).

Training records its training set's front-end in the experiment (``inference/frontend.json``,
:func:`speechser.tasks.experiment_dir.record_inference_inputs`); a packed archive carries it and inference
runs it again (:func:`speechser.pack.frontend.extract_features`):

    {"kind": "fbank", "options": {"num_mel_bins": 128, "frame_length_ms": 25.0, ...}}
    {"kind": "opensmile", "options": {"feature_set": "ComParE_2016", "level": "functionals", ...}}
    {"kind": "ssl", "options": {"model": "<dir>", "layers": [0, ..., 6], "level": "functionals", ...}}
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict

from speechser.features.extract import read_fbank_options
from speechser.features.fbank import FbankOptions
from speechser.features.opensmile_feats import OpenSmileOptions, read_opensmile_options
from speechser.features.ssl_feats import SSLFeatureOptions, read_ssl_options

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
