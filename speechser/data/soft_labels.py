"""Soft emotion labels from annotations, and SAILER's two label-side augmentations (paper 004, sec. 2.2-2.4).

**The file** ``utt2emo_dist`` (a data-directory file, sorted like every other): one utterance per line,
its annotations as ``label:votes`` pairs, e.g. ``Ses01F_impro01_F000 neu:3 hap:1 sad:1``. Votes are
non-negative numbers (vote counts from per-annotator labels; fractions where a corpus gives rates, as
Emo-DB's listener test does), at least one of them positive; labels are the label list's. The
distribution is ``d = votes / Σ votes``.

**Annotation dropout** (sec. 2.3): "randomly drop 20 % of the annotations ... specifically from the
majority classes". Our reading: each annotation of a majority class is dropped independently with
probability ``rate`` (whole votes by a binomial draw, a fractional vote as one Bernoulli draw). If
nothing would remain, the utterance keeps all its annotations (it is never emptied).

**Re-weighting** (sec. 2.4): ``q`` is the training set's empirical distribution (the mean of its
``d``), ``w_c = 1 / q_c`` normalized, and the training target is ``d' = d ∘ w``. The paper normalizes
``w`` to sum to one; we normalize so that the training set's mean sample weight ``Σ_c q_c w_c`` is one
(:func:`speechser.losses.classification.class_weights_from_counts` on the summed distributions, the same
weights ``class_weight_power`` gives hard labels), which only changes the loss's scale, so that a
re-weighted model keeps the learning rate of an unweighted one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Sequence

import numpy as np

from speechser.config import ConfigValueError, check_ranges
from speechser.io.datadir import DataDirError, read_entries


@dataclass
class SoftLabelConfig:
    """``data.soft_labels`` of an SER training config."""

    #: The data directories' soft-label file (``utt2emo_dist``); empty = hard labels (``utt2emo``) only.
    #: Training then minimizes the KL divergence to each utterance's distribution; validation scores use
    #: the hard labels.
    file: str = ""
    #: Annotation dropout (training only): the probability of dropping each majority-class annotation
    #: (SAILER: 0.2). 0 = off.
    annotation_dropout: float = 0.0
    #: The majority classes (label names): annotation dropout removes their annotations, audio mixing
    #: mixes their utterances with minority-class ones.
    majority: List[str] = field(default_factory=list)
    #: Audio mixing: the probability ``p_a`` that a majority-class training utterance is mixed. 0 = off.
    mix_prob: float = 0.0
    #: The longest silence or overlap between the two mixed utterances, in seconds (SAILER: 2).
    mix_max_seconds: float = 2.0
    #: A mixture longer than this many seconds is cut to its central part (SAILER's 15-s input cap); 0 = none.
    mix_cap_seconds: float = 0.0
    #: Multi-task targets (SAILER, sec. 2.4), for models with those heads: the secondary-emotion votes
    #: (``utt2emo2_dist``, the label list's classes; a partial file: utterances without a line have no
    #: secondary target) and the emotion attributes (``utt2avd``: arousal, valence, dominance per line).
    secondary_file: str = ""
    attribute_file: str = ""

    def __post_init__(self) -> None:
        check_ranges(self, annotation_dropout="[0, 1)", mix_prob="[0, 1]", mix_max_seconds="[0, inf)",
                     mix_cap_seconds="[0, inf)")
        if (self.annotation_dropout > 0 or self.mix_prob > 0) and not self.file:
            raise ConfigValueError("soft_labels.file", "annotation dropout and audio mixing act on soft labels: "
                                   "set the soft-label file (utt2emo_dist)")
        if (self.annotation_dropout > 0 or self.mix_prob > 0) and not self.majority:
            raise ConfigValueError("soft_labels.majority", "annotation dropout and audio mixing need the "
                                   "majority classes")


def read_label_votes(path: Path | str, labels: Sequence[str]) -> Dict[str, np.ndarray]:
    """``utt2emo_dist`` -> utterance -> votes ``(C,)`` float64 in label-list order; errors name file and line."""
    index: Mapping[str, int] = {label: i for i, label in enumerate(labels)}
    out: Dict[str, np.ndarray] = {}
    for e in read_entries(path):
        votes = np.zeros(len(labels))
        for pair in e.value.split():
            name, sep, value = pair.rpartition(":")
            if not sep or not name:
                raise DataDirError(f"{path}:{e.lineno}: '{pair}' is not label:votes (utterance '{e.key}')")
            if name not in index:
                raise DataDirError(f"{path}:{e.lineno}: unknown label '{name}' for utterance '{e.key}' "
                                   f"(label list: {' '.join(labels)})")
            try:
                v = float(value)
            except ValueError:
                raise DataDirError(f"{path}:{e.lineno}: votes '{value}' of '{name}' are not a number") from None
            if not np.isfinite(v) or v < 0:
                raise DataDirError(f"{path}:{e.lineno}: votes of '{name}' must be finite and >= 0, got {value}")
            votes[index[name]] += v
        if not votes.sum() > 0:
            raise DataDirError(f"{path}:{e.lineno}: utterance '{e.key}' has no positive vote")
        out[e.key] = votes
    return out


def format_label_votes(votes: Mapping[str, float], digits: int = 4) -> str:
    """``{label: votes}`` -> the file's value, ``label:votes`` pairs (zero votes left out)."""
    return " ".join(f"{k}:{round(float(v), digits):g}" for k, v in votes.items() if v > 0)


def annotation_dropout(votes: np.ndarray, majority: np.ndarray, rate: float, rng: np.random.Generator
                       ) -> np.ndarray:
    """Drop each majority-class annotation with probability ``rate``: ``votes (C,)``, ``majority (C,)`` bool
    -> new votes ``(C,)``, never all zero (the input is returned when the draw would empty it)."""
    if rate <= 0 or not majority.any():
        return votes
    out = votes.astype(np.float64).copy()
    for c in np.flatnonzero(majority & (votes > 0)):
        whole = int(np.floor(votes[c]))
        frac = float(votes[c]) - whole
        kept = float(rng.binomial(whole, 1.0 - rate)) if whole else 0.0
        if frac > 0 and rng.random() >= rate:
            kept += frac
        out[c] = kept
    return out if out.sum() > 0 else votes


def distribution(votes: np.ndarray) -> np.ndarray:
    """Votes ``(C,)`` -> the distribution ``(C,)`` float32."""
    return (votes / votes.sum()).astype(np.float32)


def read_attributes(path: Path | str, dim: int = 3) -> Dict[str, np.ndarray]:
    """``utt a v d`` -> utterance -> ``(dim,)`` float32; errors name file and line."""
    out: Dict[str, np.ndarray] = {}
    for e in read_entries(path):
        fields = e.value.split()
        try:
            values = np.array([float(x) for x in fields], dtype=np.float32)
        except ValueError:
            raise DataDirError(f"{path}:{e.lineno}: attributes of '{e.key}' are not numbers: {e.value}") from None
        if len(values) != dim or not np.isfinite(values).all():
            raise DataDirError(f"{path}:{e.lineno}: expected {dim} finite numbers for '{e.key}', got '{e.value}'")
        out[e.key] = values
    return out
