"""Evaluation protocols: leave-one-speaker-out, stratified random k-fold splits, and a corpus's given split;
and the record that keeps a fold's features from going stale.

A fold's ``feats.scp`` is a copy of lines of the source directory's: ``<utt> <archive>.ark:<byte offset>``.
When the feature stage runs again (new data, other options), the archives are rewritten and those offsets
point at other utterances' matrices (or at no matrix at all), while the fold still looks whole. So
``speechser-make-folds`` records in each part of each fold (``foldK/{train,valid,test}/``
:data:`FEATS_FINGERPRINT`) the archives its ``feats.scp`` points into, and training, decoding and packing
call :func:`check_fold_features` on the directories they read: an archive changed since is a
:class:`StaleFoldsError` naming the directory, the archive and the stage to re-run. A directory without the
record (made before it existed, or by hand) is read as before.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from speechser.features.extract import feature_archives
from speechser.io.datadir import DataDirError

#: The file of a fold's data directory recording the feature archives its ``feats.scp`` points into.
FEATS_FINGERPRINT = "feats_archives.json"
#: What to do about a fold whose feature archives changed: the recipe stage that makes the folds again.
REMAKE_FOLDS = "re-make the folds: run.sh --stage 4 (speechser-make-folds), then train, decode and pack again"


@dataclass(frozen=True)
class Fold:
    """Utterance lists of one fold (each sorted)."""

    name: str
    train: List[str]
    valid: List[str]
    test: List[str]


#: How a fold's validation part is chosen: ``next`` (the next group or part, cyclically, held out whole),
#: ``speaker`` (one speaker of the next group, the group's other speakers stay in training) or ``fraction``
#: (a stratified random fraction of every training utterance).
VALID_RULES = ("next", "speaker", "fraction")


def _stratified_sample(utts: Sequence[str], utt2label: Optional[Mapping[str, str]], fraction: float,
                       rng: random.Random) -> List[str]:
    """About ``fraction`` of ``utts``, drawn per label (each label with two or more utterances gives at least
    one, and never all of its utterances), sorted; without labels, of all of them; never empty for two or more
    utterances."""
    by_label: Dict[str, List[str]] = defaultdict(list)
    for u in sorted(utts):
        by_label[utt2label[u] if utt2label is not None else ""].append(u)
    out: List[str] = []
    for label in sorted(by_label):
        group = by_label[label]
        n = int(round(fraction * len(group)))
        if len(group) >= 2:
            n = min(max(n, 1), len(group) - 1)
        out += rng.sample(group, n) if n > 0 else []
    if not out and len(utts) >= 2:  # a tiny set: one utterance rather than an empty validation part
        out = [rng.choice(sorted(utts))]
    return sorted(out)


def _check_valid_rule(valid: str, fraction: float) -> None:
    if valid not in VALID_RULES:
        raise ValueError(f"unknown validation rule '{valid}' ({', '.join(VALID_RULES)})")
    if valid == "fraction" and not 0 < fraction < 1:
        raise ValueError(f"the validation fraction must be in (0, 1), got {fraction}")


def leave_one_speaker_out(utt2spk: Mapping[str, str], speakers: Sequence[str] | None = None, valid: str = "next",
                          utt2speaker: Optional[Mapping[str, str]] = None,
                          utt2label: Optional[Mapping[str, str]] = None, valid_fraction: float = 0.1,
                          seed: int = 0, group: str = "speaker") -> List[Fold]:
    """Fold ``k``: test = speaker ``k``; train = the others, less the validation part ``valid`` takes:
    ``next``: the next speaker (cyclically), whole; ``speaker``: one speaker of the next group (with groups
    that are speakers, the same as ``next``; needs ``utt2speaker``); ``fraction``: ``valid_fraction`` of the
    other speakers' utterances, stratified by ``utt2label`` and seeded (``seed``, the fold).

    ``speakers`` fixes the order (default: sorted speaker ids); fold names are ``fold1`` .. ``foldN`` in that
    order. Any grouping works in place of speakers (``utt2session``: leave-one-session-out, IEMOCAP's 5 folds;
    ``next`` then holds a whole session out for validation and trains on three of five, ``speaker`` one of
    the next session's two speakers, training on the other seven). ``group`` names the groups in errors.
    """
    _check_valid_rule(valid, valid_fraction)
    if valid == "speaker" and utt2speaker is None:
        raise ValueError("the 'speaker' validation rule needs each utterance's speaker (utt2spk)")
    spks = list(speakers) if speakers is not None else sorted(set(utt2spk.values()))
    if len(spks) < 3:
        protocol = "loso" if group == "speaker" else "losess"
        raise ValueError(f"leave-one-{group}-out ({protocol}) needs at least 3 {group}s (one to test, one to "
                         f"validate, one or more to train), and the data have {len(spks)}: "
                         f"{', '.join(spks) or 'none'}. Use --protocol random<K> (stratified random folds, e.g. "
                         f"random5) instead")
    unknown = set(spks) - set(utt2spk.values())
    if unknown:
        raise ValueError(f"speaker(s) without utterances: {sorted(unknown)}")
    by_spk: Dict[str, List[str]] = defaultdict(list)
    for utt, spk in sorted(utt2spk.items()):
        by_spk[spk].append(utt)
    folds = []
    for k, test_spk in enumerate(spks):
        pool = sorted(u for s in spks if s != test_spk for u in by_spk[s])
        next_group = by_spk[spks[(k + 1) % len(spks)]]
        if valid == "next":
            held = next_group
        elif valid == "speaker":
            assert utt2speaker is not None
            inner = sorted({utt2speaker[u] for u in next_group})
            chosen = inner[k % len(inner)]
            held = [u for u in pool if utt2speaker[u] == chosen]  # all of the speaker's, not only that group's
        else:
            held = _stratified_sample(pool, utt2label, valid_fraction, random.Random(f"{seed}:{k}"))
        held_set = set(held)
        folds.append(Fold(f"fold{k + 1}", [u for u in pool if u not in held_set], sorted(held), by_spk[test_spk]))
    return folds


def stratified_kfold(utt2label: Mapping[str, str], k: int = 10, seed: int = 0, valid: str = "fraction",
                     valid_fraction: float = 0.1) -> List[Fold]:
    """Stratified random k-fold: each class's utterances are shuffled (seeded) and dealt round-robin into ``k``
    parts. Fold ``i``: test = part ``i``; validation, by ``valid``: ``fraction`` (the default) draws
    ``valid_fraction`` of the other ``k - 1`` parts, stratified and seeded, and trains on the rest of them
    (81 % of the data with 10 folds and 0.1); ``next`` holds part ``i + 1`` out whole (cyclically) and trains on
    the other ``k - 2`` parts (80 %). More folds than utterances would leave parts empty: an error."""
    if valid == "speaker":
        raise ValueError("random folds have no speaker groups: validation 'next' or 'fraction'")
    _check_valid_rule(valid, valid_fraction)
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
        if valid == "next":
            valid_i = (i + 1) % k
            train = sorted(u for j in range(k) if j not in (i, valid_i) for u in parts[j])
            folds.append(Fold(f"fold{i + 1}", train, sorted(parts[valid_i]), sorted(parts[i])))
            continue
        pool = sorted(u for j in range(k) if j != i for u in parts[j])
        held = _stratified_sample(pool, utt2label, valid_fraction, random.Random(f"{seed}:{i}"))
        held_set = set(held)
        folds.append(Fold(f"fold{i + 1}", [u for u in pool if u not in held_set], held, sorted(parts[i])))
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
                min_valid_per_class: float = 2.0, protocol: str = "") -> List[str]:
    """Refuse folds that cannot be trained or scored and return warnings about folds that can but mislead.

    An empty train, valid or test part is a ``ValueError`` naming the fold and the part; so is, with labels,
    a training part without some class of the data (a classifier cannot be trained for it, and its test
    utterances would be wrong by construction): the error names the fold, the classes, how many
    utterances of each the data have, and the protocol to use instead. The warnings name a validation part
    with fewer than ``min_valid_per_class`` utterances per class on average (model selection on it is
    noise). ``protocol`` (``loso``, ``random10``, ...) words the advice."""
    for f in folds:
        for part in ("train", "valid", "test"):
            if not getattr(f, part):
                raise ValueError(f"{f.name}: its {part} part is empty ({len(f.train)} train, {len(f.valid)} valid, "
                                 f"{len(f.test)} test utterances): use fewer folds or more data")
    if not utt2label:
        return []
    counts: Dict[str, int] = defaultdict(int)
    for label in utt2label.values():
        counts[label] += 1
    n_classes = len(counts)
    smallest = min(counts.values())
    warnings: List[str] = []
    for f in folds:
        seen = {utt2label[u] for u in f.train if u in utt2label}
        absent = sorted(set(counts) - seen)
        if absent:
            rare = sorted(c for c, n in counts.items() if n < 3)
            if rare:
                advice = (f"class(es) {', '.join(rare)} have fewer than 3 utterances: no protocol can train, validate "
                          "and test on them; add data for them or leave them out in local/data.sh")
            elif protocol.startswith("random"):
                advice = f"use fewer folds: --protocol random<K> with K at most {smallest} (the smallest class's count)"
            else:
                advice = (f"{protocol or 'these folds'} leaves them out of this fold's training part; use --protocol "
                          f"random<K> (stratified, every part gets every class) with K at most {smallest} (the "
                          "smallest class's count)")
            raise ValueError(f"{f.name}: its training part ({len(f.train)} utterances) has no utterance of class(es) "
                             + ", ".join(f"{c} ({counts[c]} in the data)" for c in absent)
                             + f": the model could not learn them. {advice}")
        if len(f.valid) < min_valid_per_class * n_classes:
            warnings.append(f"{f.name}: {len(f.valid)} validation utterance(s) for {n_classes} classes: model "
                            f"selection and averaging on so few are noise")
    return warnings


# -- the fold's feature archives ----------------------------------------------------------------
class StaleFoldsError(DataDirError):
    """A fold's ``feats.scp`` points into a feature archive rebuilt (or removed) since the fold was made."""


def _referenced_archives(data_dir: Path) -> List[str]:
    """The archives ``data_dir/feats.scp`` points into, as it names them (relative paths are relative to the
    working directory, as kaldiio reads them), in order of first use; empty without ``feats.scp``."""
    return list(feature_archives(data_dir)) if (data_dir / "feats.scp").is_file() else []


def archive_stamps(data_dir: Path | str) -> Dict[str, Dict[str, Any]]:
    """``{archive: {"path", "size", "mtime_ns"}}`` for each archive file ``data_dir/feats.scp`` points into
    (keyed as the ``scp`` names it; ``path`` resolved; archives that do not exist are left out: reading
    them is an error of its own). Empty without ``feats.scp``.

    Size and modification time (ns), not a content hash: the archives of a corpus are gigabytes and are
    checked whenever a fold is trained, decoded or packed, where hashing them would cost minutes each time;
    the feature stage rewrites an archive when it runs again, which changes its modification time (and
    nearly always its size). The price: a copy that keeps the time of a different file (``cp -p``,
    ``rsync -a``) is not noticed, and an archive only touched is taken for rebuilt (re-making the folds
    is quick)."""
    out: Dict[str, Dict[str, Any]] = {}
    for ark in _referenced_archives(Path(data_dir)):
        try:
            st = os.stat(ark)
        except OSError:
            continue
        out[ark] = {"path": os.path.realpath(ark), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    return out


def write_feats_fingerprint(data_dir: Path | str) -> Optional[Path]:
    """Record in ``data_dir/``:data:`FEATS_FINGERPRINT` the archives its ``feats.scp`` points into now
    (:func:`archive_stamps`); returns the file, or None (and removes an old record) when the directory
    has no ``feats.scp``."""
    d = Path(data_dir)
    path = d / FEATS_FINGERPRINT
    if not (d / "feats.scp").is_file():
        path.unlink(missing_ok=True)
        return None
    record = {"made": datetime.datetime.now().isoformat(timespec="seconds"), "cwd": os.getcwd(),
              "archives": archive_stamps(d)}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def _when(mtime_ns: Any) -> str:
    try:
        return datetime.datetime.fromtimestamp(int(mtime_ns) / 1e9).isoformat(timespec="seconds")
    except (TypeError, ValueError, OverflowError, OSError):
        return "?"


_UNRECORDED: set = set()


def check_fold_features(*data_dirs: Optional[Path | str]) -> None:
    """Refuse a data directory whose ``feats.scp`` points into a feature archive that changed since
    ``speechser-make-folds`` recorded it (:data:`FEATS_FINGERPRINT`): a :class:`StaleFoldsError` naming the
    directory, the archive, what changed and the stage to re-run (:data:`REMAKE_FOLDS`). Only the archives
    both recorded and still named by ``feats.scp`` are compared. Empty arguments and directories without
    the record are passed (the latter logged once, at debug level: data made by hand or before the record)."""
    for data_dir in data_dirs:
        if not data_dir:
            continue
        d = Path(data_dir)
        record_path = d / FEATS_FINGERPRINT
        if not record_path.is_file():
            if d.is_dir() and str(d) not in _UNRECORDED:
                _UNRECORDED.add(str(d))
                logging.debug("%s: no %s (not made by speechser-make-folds, or before it recorded the feature "
                              "archives): its feature archives are not checked", d, FEATS_FINGERPRINT)
            continue
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
            recorded = record["archives"]
            if not isinstance(recorded, dict):
                raise ValueError("'archives' is not a mapping")
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise StaleFoldsError(f"{record_path}: unreadable record of the fold's feature archives ({err}); "
                                  f"to fix it, {REMAKE_FOLDS}.") from None
        changed = []
        for ark in _referenced_archives(d):
            old = recorded.get(ark)
            if not isinstance(old, dict):
                continue
            try:
                st = os.stat(ark)
            except OSError:
                changed.append(f"'{ark}', which no longer exists (it was {old.get('size')} bytes, written "
                               f"{_when(old.get('mtime_ns'))}, when the folds were made; if the feature stage "
                               "did not run again since, run it first: run.sh --stage 3)")
                continue
            if st.st_size != old.get("size") or st.st_mtime_ns != old.get("mtime_ns"):
                changed.append(f"'{ark}', which was rewritten after the folds were made ({old.get('size')} "
                               f"bytes written {_when(old.get('mtime_ns'))} then, {st.st_size} bytes written "
                               f"{_when(st.st_mtime_ns)} now)")
        if changed:
            more = f" (and {len(changed) - 1} more archive(s))" if len(changed) > 1 else ""
            raise StaleFoldsError(
                f"{d}: the fold's feats.scp points into feature archive {changed[0]}{more}: the feature stage "
                f"ran again since, and the byte offsets in {d}/feats.scp now point at other utterances' "
                f"features or at none (the fold's record: {record_path}); to fix it, {REMAKE_FOLDS}.")


def check_experiment_folds(exp_dir: Path | str) -> None:
    """:func:`check_fold_features` on every data directory (``data.*_dir``) of the resolved config an
    experiment was trained with (``exp_dir/config.yaml``; relative paths are relative to the working
    directory, the recipe's). An experiment without a readable config is passed: loading it reports that."""
    from speechser.config import ConfigError, read_yaml

    try:
        conf = read_yaml(Path(exp_dir) / "config.yaml")
    except (ConfigError, OSError):
        return
    data = conf.get("data")
    if isinstance(data, dict):
        check_fold_features(*(v for k, v in data.items() if str(k).endswith("_dir") and isinstance(v, str)))
