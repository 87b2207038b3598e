"""Utterance-level vectors read beside the frames, for early fusion (issue 14).

``data.vector_dir`` names a feature directory whose ``feats.scp`` holds one ``(1, F)`` matrix per
utterance (the openSMILE functionals of ``ser.sh --feats_type opensmile_functionals``:
``dump/opensmile_functionals_<set>/all``). :class:`UttVectors` loads them once and hands out each
utterance's vector ``(F,)``, z-normalized per speaker with the directory's own ``cmvn.scp`` and
``utt2spk`` (``cmvn_type: speaker``, the statistics the feature stage computes; they use no labels), or
left raw (``none``). Global statistics are refused: over a directory that holds every fold's test
speakers they would leak the test set into the normalization.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Dict, Iterable

import kaldiio
import numpy as np

from speechser.data.ser_dataset import read_cmvn
from speechser.io.datadir import DataDirError, read_entries


class UttVectors:
    """``vector_dir`` -> utterance -> normalized vector ``(F,)`` float32."""

    def __init__(self, vector_dir: Path | str, cmvn_type: str = "speaker") -> None:
        self.dir = Path(vector_dir)
        scp = self.dir / "feats.scp"
        if not scp.is_file():
            raise DataDirError(f"{scp}: no such file (data.vector_dir: a directory of utterance-level vectors, "
                               "e.g. dump/opensmile_functionals_ComParE_2016/all)")
        if cmvn_type not in ("speaker", "none"):
            raise ValueError(f"data.vector_dir is normalized per speaker or not at all (cmvn_type speaker or none), "
                             f"not '{cmvn_type}'")
        cmvn = read_cmvn(self.dir, cmvn_type, None)
        self.table: Dict[str, np.ndarray] = {}
        for e in read_entries(scp):
            try:
                mat = np.asarray(kaldiio.load_mat(e.value), dtype=np.float32)
            except Exception as err:  # a corrupt or missing archive: name it
                raise DataDirError(f"{scp}:{e.lineno}: the vector of '{e.key}' cannot be read: {err}") from None
            if mat.ndim != 2 or mat.shape[0] != 1:
                raise DataDirError(f"{scp}:{e.lineno}: '{e.key}' has a {mat.shape} matrix, not one (1, F) row: "
                                   "data.vector_dir takes utterance-level features (openSMILE functionals)")
            if cmvn is not None:
                mat = cmvn(e.key, mat).astype(np.float32)
            self.table[e.key] = mat[0]
        dims = {v.shape[0] for v in self.table.values()}
        if not dims:
            raise DataDirError(f"{scp}: no vectors")
        if len(dims) != 1:
            raise DataDirError(f"{scp}: vectors of different widths {sorted(dims)}")
        self.dim = dims.pop()

    def check_keys(self, keys: Iterable[str], where: Path | str) -> None:
        """Every utterance of ``where`` must have a vector."""
        lost = [k for k in keys if k not in self.table]
        if lost:
            raise DataDirError(f"{self.dir}/feats.scp: no vector for utterance '{lost[0]}' of {where} "
                               f"({len(lost)} missing; was it skipped by the feature stage?)")

    def __getitem__(self, key: str) -> np.ndarray:
        return self.table[key]


@functools.lru_cache(maxsize=4)
def _load(vector_dir: Path, cmvn_type: str, mtime_ns: int) -> UttVectors:
    return UttVectors(vector_dir, cmvn_type)


def load_utt_vectors(vector_dir: Path | str, cmvn_type: str = "speaker") -> UttVectors:
    """:class:`UttVectors`, read once per process for the training, validation and k-NN sets alike (read
    again when the directory's ``feats.scp`` changes)."""
    path = Path(vector_dir).resolve()
    scp = path / "feats.scp"
    return _load(path, cmvn_type, scp.stat().st_mtime_ns if scp.is_file() else 0)
