import json
import math
from pathlib import Path

import pytest

from speechser.filter.data_filter import FilterBounds, filter_data_dir, filter_utterances, utterance_wer, violations
from speechser.io.datadir import DataDirError, read_kv, write_kv


def test_utterance_wer():
    assert utterance_wer("a b c d", "a b c d") == 0.0
    assert utterance_wer("a b c d", "a x c") == 0.5
    assert utterance_wer("", "") == 0.0 and math.isinf(utterance_wer("", "a"))


def test_bounds_are_strict_and_nan_is_rejected():
    b = FilterBounds()  # 0.3 < conf < 0.95, 0.05 < wer < 0.40
    assert violations(0.2, 0.5, b) == []
    assert violations(0.05, 0.5, b) == ["wer_low"]  # the bound itself is outside
    assert violations(0.40, 0.95, b) == ["conf_high", "wer_high"]
    assert violations(0.2, 0.3, b) == ["conf_low"]
    assert violations(0.2, float("nan"), b) == ["conf_low", "conf_high"]


def test_filter_counts_each_reason():
    refs = {"u1": "a b c d e", "u2": "a b c d e", "u3": "a b c d e", "u4": "a b c d e", "u5": "a b"}
    hyps = {"u1": "a b c d x", "u2": "a b c d e", "u3": "x y z d e", "u4": "a b c d x"}
    confs = {"u1": 0.8, "u2": 0.99, "u3": 0.5, "u4": 0.1}
    kept, rep, rows = filter_utterances(refs, hyps, confs, FilterBounds())
    assert kept == ["u1"]
    assert (rep.total, rep.kept, rep.removed) == (5, 1, 4)
    assert rep.too_easy == 1 and rep.too_corrupt == 2 and rep.not_decoded == 1
    assert rep.by_bound == {"conf_low": 1, "conf_high": 1, "wer_low": 1, "wer_high": 1}
    assert rows[1].split("\t")[3] == "conf_high,wer_low" and rows[4].endswith("not_decoded")


def test_filter_data_dir_writes_subset_and_report(make_feats_dir, tmp_path: Path):
    d = make_feats_dir()
    refs = read_kv(d / "text")
    dec = tmp_path / "dec"
    dec.mkdir()
    keys = sorted(refs)
    hyps = {k: refs[k] for k in keys}
    hyps[keys[0]] = refs[keys[0]].split()[0] + " wrong"  # WER 0.5 -> too corrupt
    hyps[keys[1]] = "hello"  # "hello N" -> WER 0.5
    write_kv(dec / "text", hyps)
    write_kv(dec / "confidence", {k: "0.5" for k in keys})
    with pytest.raises(DataDirError, match="kept no utterance"):
        filter_data_dir(d, dec, tmp_path / "none")
    rep = filter_data_dir(d, dec, tmp_path / "kept", FilterBounds(wer_max=0.6))
    assert rep.kept == 2 and sorted(read_kv(tmp_path / "kept/utt2spk")) == keys[:2]
    assert sorted(read_kv(tmp_path / "kept/feats.scp")) == keys[:2]
    assert json.loads((tmp_path / "kept.report.json").read_text())["too_easy"] == len(keys) - 2
    assert "kept 2" in (tmp_path / "kept.report.txt").read_text()
    write_kv(dec / "text", {**hyps, "zzz": "x"})
    with pytest.raises(DataDirError, match="zzz"):
        filter_data_dir(d, dec, tmp_path / "bad")
