"""Ensembles of SER decodes: each member is a decode directory holding ``posteriors.tsv`` and ``ref``
(as :func:`speechser.metrics.decode_dir.write_ser_decode` writes them).

- ``vote``: each member votes for its argmax class; the most votes win, a tie
  goes to the tied class with the highest mean posterior. The written
  posteriors are the vote shares.
- ``mean``: the argmax of the mean posterior.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

from speechser.io.datadir import DataDirError, read_kv
from speechser.metrics.decode_dir import read_posteriors, write_ser_decode  # noqa: F401 (read_posteriors: re-exported)


def read_members(member_dirs: Sequence[Path | str]) -> Tuple[List[str], List[str], np.ndarray]:
    """The ``posteriors.tsv`` of each decode directory -> (labels, keys, ``(M, N, C)`` posteriors); the
    members must share labels and utterances (in order), else a :class:`DataDirError` names the two."""
    members = [read_posteriors(Path(d) / "posteriors.tsv") for d in member_dirs]
    labels, keys, _ = members[0]
    for d, (lab, k, _) in zip(member_dirs, members):
        if lab != labels:
            raise DataDirError(f"{d}/posteriors.tsv: labels {lab} differ from {member_dirs[0]}'s {labels}")
        if k != keys:
            raise DataDirError(f"{d}/posteriors.tsv: its utterances differ from {member_dirs[0]}'s")
    return labels, keys, np.stack([m[2] for m in members])


def ensemble_decodes(member_dirs: Sequence[Path | str], out_dir: Path | str, method: str = "vote") -> Dict[str, float]:
    """Combine member decodes into ``out_dir`` (same layout); members must share labels and utterances."""
    if method not in ("vote", "mean"):
        raise ValueError(f"unknown ensemble method '{method}' (vote, mean)")
    if not member_dirs:
        raise ValueError("an ensemble needs at least one member")
    labels, keys, posts = read_members(member_dirs)
    mean = posts.mean(0)
    ref_table = read_kv(Path(member_dirs[0]) / "ref")
    refs = [labels.index(ref_table[k]) for k in keys]
    if method == "mean":
        return write_ser_decode(out_dir, keys, mean, refs, labels, {"ensemble": "mean", "members": list(map(str, member_dirs))})
    C = len(labels)
    votes = np.zeros_like(mean)
    for m in range(posts.shape[0]):
        votes[np.arange(len(keys)), posts[m].argmax(1)] += 1
    top = votes == votes.max(1, keepdims=True)
    hyps = np.where(top, mean, -np.inf).argmax(1).tolist()
    return write_ser_decode(out_dir, keys, votes / posts.shape[0], refs, labels,
                            {"ensemble": "vote", "members": list(map(str, member_dirs)), "num_classes": C}, hyps=hyps)
