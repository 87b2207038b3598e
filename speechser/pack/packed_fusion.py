"""A late fusion or seed ensemble of SER models as one archive (task ``ser_fusion``).

The archive holds each member's complete SER archive (``member<i>.tar``, :mod:`speechser.pack.packed_ser`,
packed with the checkpoint that member's fused decode used) and, in ``meta.json``, the fold's ``weights``
(as :func:`speechser.combine.late_fusion.fuse_fold` chose or took them, from its ``fusion.json``). Labelling runs
every member on the audio (each with its own front-end: fusion is usually across front-ends) and returns
``sum_i w_i p_i``, the posteriors of the recipe's fused decode. An utterance a member skips (openSMILE skips
clipped audio, say) is skipped by the fusion, with that member's reason.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

import torch

from speechser.data.labels import UNKNOWN_LABEL
from speechser.pack.archive import PackError, write_archive
from speechser.pack.packed import PackedArchive
from speechser.pack.packed_ser import LabelledSet, PackedSER, pack_ser
from speechser.tasks.ser import SEROutputs

FUSION_FILE = "fusion.json"


def pack_fusion(fold_dir: Path | str, out: Path | str, corpus: str = "", results: Optional[Path | str] = None,
                min_duration: float = 0.5) -> Path:
    """Pack the fused fold ``fold_dir`` (its ``fusion.json``: member experiment directories, relative to the
    recipe directory, and weights) into ``out``."""
    fold_dir = Path(fold_dir)
    path = fold_dir / FUSION_FILE
    if not path.is_file():
        raise PackError(f"{path}: no such file (run the late fusion, stage 6 with --fusion_config, first)")
    info = json.loads(path.read_text())
    members: Dict[str, bytes] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, member in enumerate(info["members"]):
            scores = Path(member) / "decode_test/scores.json"
            ckpt = json.loads(scores.read_text()).get("checkpoint") if scores.is_file() else None
            members[f"member{i}.tar"] = pack_ser(member, Path(tmp) / f"member{i}.tar", ckpt, corpus, None,
                                                 min_duration).read_bytes()
    if results is not None:
        members["RESULTS.md"] = Path(results).read_bytes()
    meta = {"task": "ser_fusion", "members": info["members"], "weights": info["weights"], "mode": info["mode"],
            "corpus": corpus, "min_duration": float(min_duration), "source": str(fold_dir.resolve())}
    out_path = write_archive(out, members, meta)
    logging.info("packed the fusion %s (%d members, weights %s) into %s", fold_dir, len(info["members"]),
                 info["weights"], out_path)
    return out_path


class PackedFusion(PackedArchive):
    """A packed late fusion or ensemble: its member archives checked and loaded."""

    task = "ser_fusion"

    def __init__(self, archive: Path | str, device: str = "auto") -> None:
        super().__init__(archive)
        self.weights: List[float] = [float(w) for w in self.meta["weights"]]
        self.members = [PackedSER(self.dir / f"member{i}.tar", device) for i in range(len(self.weights))]
        self.labels = self.members[0].labels
        other = next((m for m in self.members if m.labels != self.labels), None)
        if other is not None:
            raise PackError(f"{self.archive}: its members have different label lists ({self.labels} and "
                            f"{other.labels})")

    def close(self) -> None:
        for m in self.members:
            m.close()
        super().close()

    def label_data_dir(self, data_dir: Path | str, work_dir: Path | str) -> LabelledSet:
        """The weighted mean of the members' posteriors on every utterance all of them label."""
        done = [m.label_data_dir(data_dir, Path(work_dir) / f"member{i}") for i, m in enumerate(self.members)]
        skipped: Dict[str, str] = {}
        for d in done:
            skipped.update(d.skipped)
        keys = sorted(set.intersection(*(set(d.outputs.keys) for d in done)))
        post = torch.zeros(len(keys), len(self.labels), dtype=torch.float64)
        for w, d in zip(self.weights, done):
            row = {k: i for i, k in enumerate(d.outputs.keys)}
            post += w * d.outputs.post.double()[[row[k] for k in keys]]
        return LabelledSet(SEROutputs(keys, torch.zeros(len(keys), 0), post, [UNKNOWN_LABEL] * len(keys)), skipped)
