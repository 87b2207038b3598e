"""Evaluation protocols: leave-one-speaker-out, stratified random k-fold splits, and a corpus's given split."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Dict, List, Mapping, Sequence


@dataclass(frozen=True)
class Fold:
    """Utterance lists of one fold (each sorted)."""

    name: str
    train: List[str]
    valid: List[str]
    test: List[str]


def leave_one_speaker_out(utt2spk: Mapping[str, str], speakers: Sequence[str] | None = None) -> List[Fold]:
    """Fold ``k``: test = speaker ``k``, valid = the next speaker (cyclically), train = the rest.

    ``speakers`` fixes the order (default: sorted speaker ids); fold names are
    ``fold1`` .. ``foldN`` in that order. Any grouping works in place of speakers (``utt2session``:
    leave-one-session-out, IEMOCAP's 5 folds with test = session ``k``, valid = session ``k + 1``).
    """
    spks = list(speakers) if speakers is not None else sorted(set(utt2spk.values()))
    if len(spks) < 3:
        raise ValueError("leave-one-speaker-out needs at least 3 speakers")
    unknown = set(spks) - set(utt2spk.values())
    if unknown:
        raise ValueError(f"speaker(s) without utterances: {sorted(unknown)}")
    by_spk: Dict[str, List[str]] = defaultdict(list)
    for utt, spk in sorted(utt2spk.items()):
        by_spk[spk].append(utt)
    folds = []
    for k, test_spk in enumerate(spks):
        valid_spk = spks[(k + 1) % len(spks)]
        train = sorted(u for s in spks if s not in (test_spk, valid_spk) for u in by_spk[s])
        folds.append(Fold(f"fold{k + 1}", train, by_spk[valid_spk], by_spk[test_spk]))
    return folds


def stratified_kfold(utt2label: Mapping[str, str], k: int = 10, seed: int = 0) -> List[Fold]:
    """Stratified random k-fold: each class's utterances are shuffled (seeded)
    and dealt round-robin into ``k`` parts. Fold ``i``: test = part ``i``,
    valid = part ``i+1`` (cyclically), train = the other ``k-2`` parts. More folds than utterances
    would leave parts empty: an error."""
    if k < 3:
        raise ValueError("k must be at least 3 (train, valid and test parts)")
    if k > len(utt2label):
        raise ValueError(f"random{k} needs at least {k} utterances (one per part); there are {len(utt2label)}: "
                         f"ask for at most random{max(len(utt2label), 3)}, or use leave-one-speaker-out")
    rng = random.Random(seed)
    parts: List[List[str]] = [[] for _ in range(k)]
    by_label: Dict[str, List[str]] = defaultdict(list)
    for utt, label in sorted(utt2label.items()):
        by_label[label].append(utt)
    offset = 0
    for label in sorted(by_label):
        utts = by_label[label]
        rng.shuffle(utts)
        for j, utt in enumerate(utts):
            parts[(offset + j) % k].append(utt)
        offset += len(utts)
    folds = []
    for i in range(k):
        valid_i = (i + 1) % k
        train = sorted(u for j in range(k) if j not in (i, valid_i) for u in parts[j])
        folds.append(Fold(f"fold{i + 1}", train, sorted(parts[valid_i]), sorted(parts[i])))
    return folds


def given_split(utt2split: Mapping[str, str], train: str = "Train", valid: str = "Development",
                test: str = "Test1") -> List[Fold]:
    """The corpus's own partition (``utt2split``: utterance -> split name, e.g. MSP-Podcast's Train,
    Development, Test1): one fold ``fold1`` with the utterances of the splits named ``train``, ``valid``
    and ``test``; utterances of other splits (Test2, ...) are in none of its parts. The three names must
    differ, and a part without utterances is an error naming the split and the splits there are."""
    names = {"train": train, "valid": valid, "test": test}
    if len(set(names.values())) != 3:
        raise ValueError(f"the train, valid and test splits must differ, got {train}, {valid}, {test}")
    by_split: Dict[str, List[str]] = defaultdict(list)
    for utt, split in sorted(utt2split.items()):
        by_split[split].append(utt)
    for part, split in names.items():
        if not by_split.get(split):
            raise ValueError(f"the {part} part is empty: no utterance of split '{split}' in utt2split "
                             f"(its splits: {' '.join(sorted(by_split)) or 'none'})")
    return [Fold("fold1", by_split[train], by_split[valid], by_split[test])]


def check_folds(folds: Sequence[Fold], utt2label: Mapping[str, str] | None = None,
                min_valid_per_class: float = 2.0) -> List[str]:
    """Refuse folds that cannot be trained or scored and return warnings about folds that can but mislead.

    An empty train, valid or test part is a ``ValueError`` naming the fold and the part. With labels, the
    warnings name, per fold, the test classes its training part never shows (the model cannot predict
    them: their recall is 0 by construction), and a validation part with fewer than
    ``min_valid_per_class`` utterances per class on average (model selection on it is noise)."""
    for f in folds:
        for part in ("train", "valid", "test"):
            if not getattr(f, part):
                raise ValueError(f"{f.name}: its {part} part is empty ({len(f.train)} train, {len(f.valid)} valid, "
                                 f"{len(f.test)} test utterances): use fewer folds or more data")
    if not utt2label:
        return []
    n_classes = len(set(utt2label.values()))
    warnings = []
    for f in folds:
        seen = {utt2label[u] for u in f.train if u in utt2label}
        unseen = sorted({utt2label[u] for u in f.test if u in utt2label} - seen)
        if unseen:
            warnings.append(f"{f.name}: test class(es) {', '.join(unseen)} never occur in its training part "
                            f"({len(f.train)} utterances): their recall is 0 by construction")
        if len(f.valid) < min_valid_per_class * n_classes:
            warnings.append(f"{f.name}: {len(f.valid)} validation utterance(s) for {n_classes} classes: model "
                            f"selection and averaging on so few are noise")
    return warnings
