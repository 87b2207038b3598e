"""Seeded transcript corruption (speechser.filter.corrupt) and the filter's detection scores."""

from pathlib import Path

import pytest

from speechser.filter.corrupt import KINDS, corrupt_transcripts, detection_scores, group_of, read_corrupted_list
from speechser.io.datadir import DataDirError


def corpus(n: int = 60):
    words = ["ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE"]
    base = {f"u{i:03d}": " ".join(words[(i + j) % 9] for j in range(1 + i % 5)) for i in range(n)}
    texts = dict(base)
    for f in ("0.9", "1.1"):
        texts.update({f"sp{f}-{k}": v for k, v in base.items()})
    return base, texts


def test_fraction_groups_kinds_and_seed():
    base, texts = corpus(60)
    new, corrupted = corrupt_transcripts(texts, 0.15, seed=7)
    assert len(corrupted) == 9  # 15 % of 60 recordings, each really changed
    assert set(corrupted.values()) <= set(KINDS)
    changed = {group_of(k) for k in texts if new[k] != texts[k]}
    assert changed == set(corrupted)
    for g in corrupted:  # every speed-perturbed copy carries the same corrupted transcript
        assert new[g] == new[f"sp0.9-{g}"] == new[f"sp1.1-{g}"] != base[g]
    for g, kind in corrupted.items():
        if kind == "truncated":
            n = len(base[g].split())
            assert new[g].split() == base[g].split()[: max(1, -(-n // 2) - 1)] and n > 1
        if kind == "swapped":
            assert new[g] in base.values()
    assert corrupt_transcripts(texts, 0.15, seed=7) == (new, corrupted)
    assert corrupt_transcripts(texts, 0.15, seed=8)[1] != corrupted


def test_inconsistent_copies_and_bad_fraction_are_errors():
    with pytest.raises(DataDirError, match="sp0.9-a"):
        corrupt_transcripts({"a": "X Y", "sp0.9-a": "X Z"}, 0.5)
    with pytest.raises(ValueError):
        corrupt_transcripts({"a": "X"}, 1.5)


def test_detection_scores_count_only_too_corrupt_removals(tmp_path: Path):
    stats = tmp_path / "data.utt_stats.tsv"
    stats.write_text("utt\twer\tconfidence\tdecision\n"
                     "a\t0.8\t0.2\twer_high,conf_low\n"      # corrupted, flagged
                     "sp0.9-a\t0.5\t0.6\twer_high\n"         # corrupted copy, flagged
                     "b\t0.0\t0.99\twer_low,conf_high\n"     # clean, removed as too easy: not flagged
                     "c\t0.6\t0.5\twer_high\n"               # clean, flagged: a false positive
                     "d\t0.1\t0.8\tkept\n"                   # corrupted but kept: missed
                     "e\tnan\tnan\tnot_decoded\n")           # clean, not decoded: flagged
    s = detection_scores(stats, {"a": "swapped", "d": "truncated"})
    assert (s.utterances, s.corrupted, s.flagged, s.true_positives) == (6, 3, 4, 2)
    assert s.precision == pytest.approx(2 / 4) and s.recall == pytest.approx(2 / 3)
    bad = tmp_path / "corrupted"
    bad.write_text("a swapped\nd shuffled\n")
    with pytest.raises(DataDirError, match=r"corrupted:2"):
        read_corrupted_list(bad)
