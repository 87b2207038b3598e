"""speechser-make-folds --protocol split: one fold from the corpus's own partition (utt2split)."""

from __future__ import annotations

from pathlib import Path

import pytest

from speechser.data.folds import Fold, given_split
from speechser.io.datadir import read_kv, validate_data_dir

UTT2SPLIT = {"a1": "Train", "a2": "Train", "b1": "Development", "c1": "Test1", "c2": "Test1", "d1": "Test2",
             "a0": "Train"}


def test_given_split_is_one_fold_of_the_named_splits():
    folds = given_split(UTT2SPLIT)
    assert folds == [Fold("fold1", ["a0", "a1", "a2"], ["b1"], ["c1", "c2"])]  # sorted; Test2 in no part
    other = given_split(UTT2SPLIT, train="Train", valid="Development", test="Test2")
    assert other[0].test == ["d1"] and other[0].train == ["a0", "a1", "a2"]


@pytest.mark.parametrize("names, words", [
    ({"test": "Test3"}, ["test part is empty", "'Test3'", "Development Test1 Test2 Train"]),
    ({"valid": "Dev"}, ["valid part is empty", "'Dev'"]),
    ({"test": "Train"}, ["must differ"]),
])
def test_given_split_errors(names, words):
    with pytest.raises(ValueError) as err:
        given_split(UTT2SPLIT, **names)
    assert all(w in str(err.value) for w in words), str(err.value)


def _with_split(d: Path, splits) -> None:
    utts = sorted(read_kv(d / "utt2spk"))
    (d / "utt2split").write_text("".join(f"{u} {s}\n" for u, s in zip(utts, splits)))


def test_make_folds_split_protocol_writes_fold1(make_data_dir, run_main, tmp_path):
    d = make_data_dir(n_spk=2, n_utt=3)  # spkA-u0..2, spkB-u0..2
    _with_split(d, ["Train", "Train", "Development", "Test1", "Train", "Test2"])
    out = tmp_path / "split"
    proc = run_main("make_folds", d, out, "--protocol", "split")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["fold1"]
    parts = {p: sorted(read_kv(out / "fold1" / p / "utt2spk")) for p in ("train", "valid", "test")}
    assert parts == {"train": ["spkA-u0", "spkA-u1", "spkB-u1"], "valid": ["spkA-u2"], "test": ["spkB-u0"]}
    for p in parts:
        validate_data_dir(out / "fold1" / p)
        assert set(read_kv(out / "fold1" / p / "utt2split").values()) == {
            {"train": "Train", "valid": "Development", "test": "Test1"}[p]}  # utt2split is carried
    # other split names
    out2 = tmp_path / "split2"
    proc = run_main("make_folds", d, out2, "--protocol", "split", "--test-split", "Test2",
                    "--valid-split", "Test1")
    assert proc.returncode == 0, proc.stderr
    assert sorted(read_kv(out2 / "fold1/test/utt2spk")) == ["spkB-u2"]
    assert sorted(read_kv(out2 / "fold1/valid/utt2spk")) == ["spkB-u0"]


def test_make_folds_split_protocol_errors(make_data_dir, run_main, tmp_path):
    d = make_data_dir(n_spk=2, n_utt=2)
    proc = run_main("make_folds", d, tmp_path / "x", "--protocol", "split")
    assert proc.returncode == 1
    assert f"{d}/utt2split: no such file" in proc.stderr
    _with_split(d, ["Train", "Train", "Development", "Train"])  # no Test1
    proc = run_main("make_folds", d, tmp_path / "y", "--protocol", "split")
    assert proc.returncode == 1
    assert "utt2split" in proc.stderr and "test part is empty" in proc.stderr and "'Test1'" in proc.stderr
    assert not (tmp_path / "y").exists()
    proc = run_main("make_folds", d, tmp_path / "z", "--protocol", "splits")
    assert proc.returncode == 1 and "unknown protocol 'splits'" in proc.stderr
