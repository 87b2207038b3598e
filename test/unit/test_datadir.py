from pathlib import Path

import pytest

from speechser.io import datadir as dd


def test_read_write_roundtrip_sorted(tmp_path: Path):
    p = tmp_path / "text"
    dd.write_kv(p, {"b": "two words", "a": "one", "c": ""})
    assert p.read_text() == "a one\nb two words\nc\n"
    assert dd.read_kv(p) == {"a": "one", "b": "two words", "c": ""}


def test_duplicate_key_names_both_lines(tmp_path: Path):
    p = tmp_path / "utt2spk"
    p.write_text("u1 s1\nu2 s1\nu1 s2\n")
    with pytest.raises(dd.DataDirError, match=r"utt2spk:3: duplicate key 'u1' \(first on line 1\)"):
        dd.read_kv(p)


def test_missing_value_is_error_except_text(tmp_path: Path):
    (tmp_path / "utt2spk").write_text("u1 s1\nu2\n")
    with pytest.raises(dd.DataDirError, match=r"utt2spk:2: key 'u2' has no value"):
        dd.read_kv(tmp_path / "utt2spk")
    (tmp_path / "text").write_text("u1 hi\nu2\n")
    assert dd.read_kv(tmp_path / "text")["u2"] == ""


def test_validate_ok(make_data_dir):
    d = make_data_dir()
    assert dd.validate_data_dir(d, label_files={"utt2emo": ["ang", "neu"]}) == 6


def test_validate_unsorted_utt2spk_names_file_and_line(make_data_dir):
    d = make_data_dir()
    lines = (d / "utt2spk").read_text().splitlines()
    lines[1], lines[2] = lines[2], lines[1]
    (d / "utt2spk").write_text("\n".join(lines) + "\n")
    with pytest.raises(dd.DataDirError, match=r"utt2spk:3: key 'spkA-u1' is not sorted after 'spkA-u2'"):
        dd.validate_data_dir(d)


def test_validate_key_set_mismatch(make_data_dir):
    d = make_data_dir()
    (d / "utt2emo").write_text("".join(ln + "\n" for ln in (d / "utt2emo").read_text().splitlines()[:-1]))
    with pytest.raises(dd.DataDirError, match=r"utt2emo: key set differs from utt2spk: 1 utterance\(s\) missing, first 'spkB-u2'"):
        dd.validate_data_dir(d)


def test_validate_unknown_label_names_line(make_data_dir):
    d = make_data_dir()
    text = (d / "utt2emo").read_text().replace("spkA-u1 neu", "spkA-u1 joy")
    (d / "utt2emo").write_text(text)
    with pytest.raises(dd.DataDirError, match=r"utt2emo:2: unknown label 'joy' for utterance 'spkA-u1'"):
        dd.validate_data_dir(d, label_files={"utt2emo": ["ang", "neu"]})


def test_validate_spk2utt_inconsistent(make_data_dir):
    d = make_data_dir()
    (d / "spk2utt").write_text("spkA spkA-u0 spkA-u1\nspkB spkB-u0 spkB-u1 spkB-u2\n")
    with pytest.raises(dd.DataDirError, match=r"spk2utt:1 \(speaker 'spkA'\): not the inverse of utt2spk"):
        dd.validate_data_dir(d)


def test_validate_segments(make_data_dir):
    d = make_data_dir()
    (d / "segments").write_text("".join(f"{u} {u} 0.0 0.5\n" for u in dd.read_kv(d / "utt2spk")))
    assert dd.validate_data_dir(d) == 6
    (d / "segments").write_text("".join(f"{u} {u} 0.6 0.5\n" for u in dd.read_kv(d / "utt2spk")))
    with pytest.raises(dd.DataDirError, match=r"segments:1: need 0 <= start < end"):
        dd.validate_data_dir(d)


def test_fix_data_dir_keeps_common_and_sorts(make_data_dir):
    d = make_data_dir()
    emo = (d / "utt2emo").read_text().splitlines()
    (d / "utt2emo").write_text("\n".join(reversed(emo[1:])) + "\n")  # unsorted, one missing
    kept, dropped = dd.fix_data_dir(d)
    assert (kept, dropped) == (5, 1)
    assert dd.validate_data_dir(d) == 5
    assert "spkA-u0" not in dd.read_kv(d / "wav.scp")
    assert (d / ".backup" / "utt2emo").is_file()


def test_subset_by_utt_spk_first(make_data_dir, tmp_path: Path):
    d = make_data_dir()
    assert dd.subset_data_dir(d, tmp_path / "u", utt_list=["spkB-u1", "spkA-u0"]) == 2
    assert list(dd.read_kv(tmp_path / "u" / "utt2spk")) == ["spkA-u0", "spkB-u1"]
    assert dd.validate_data_dir(tmp_path / "u") == 2
    assert dd.subset_data_dir(d, tmp_path / "s", spk_list=["spkB"]) == 3
    assert set(dd.read_kv(tmp_path / "s" / "spk2utt")) == {"spkB"}
    assert dd.subset_data_dir(d, tmp_path / "f", first=4) == 4
    with pytest.raises(dd.DataDirError, match="no utterance 'nope'"):
        dd.subset_data_dir(d, tmp_path / "x", utt_list=["nope"])
    with pytest.raises(dd.DataDirError, match="no speaker 'spkZ'"):
        dd.subset_data_dir(d, tmp_path / "y", spk_list=["spkZ"])


def test_copy_with_prefix_and_combine(make_data_dir, tmp_path: Path):
    d = make_data_dir()
    dd.copy_data_dir(d, tmp_path / "sp", utt_prefix="sp0.9-", spk_prefix="sp0.9-")
    assert dd.validate_data_dir(tmp_path / "sp") == 6
    assert "sp0.9-spkA-u0" in dd.read_kv(tmp_path / "sp" / "wav.scp")
    assert dd.combine_data(tmp_path / "all", [d, tmp_path / "sp"]) == 12
    assert dd.validate_data_dir(tmp_path / "all") == 12
    with pytest.raises(dd.DataDirError, match="key 'spkA-u0' of wav.scp is in both"):
        dd.combine_data(tmp_path / "dup", [d, d])


def test_split_scp_even_and_by_speaker(make_data_dir, tmp_path: Path):
    d = make_data_dir(n_spk=3, n_utt=3)
    outs = [tmp_path / f"p{i}" for i in range(4)]
    dd.split_scp(d / "wav.scp", outs)
    sizes = [len(o.read_text().splitlines()) for o in outs]
    assert sorted(sizes) == [2, 2, 2, 3] and sum(sizes) == 9
    joined = "".join(o.read_text() for o in outs)
    assert joined == (d / "wav.scp").read_text()
    outs = [tmp_path / f"q{i}" for i in range(3)]
    dd.split_scp(d / "wav.scp", outs, utt2spk=d / "utt2spk")
    for o in outs:
        spks = {ln.split()[0].split("-")[0] for ln in o.read_text().splitlines()}
        assert len(spks) == 1
    with pytest.raises(dd.DataDirError, match="cannot split 3 group"):
        dd.split_scp(d / "wav.scp", [tmp_path / f"r{i}" for i in range(4)], utt2spk=d / "utt2spk")


def test_filter_scp(make_data_dir, tmp_path: Path):
    d = make_data_dir()
    ids = tmp_path / "ids"
    ids.write_text("spkA-u1\nspkB-u2 extra\n")
    kept = list(dd.filter_scp(ids, d / "utt2emo"))
    assert kept == ["spkA-u1 neu", "spkB-u2 ang"]
    assert len(list(dd.filter_scp(ids, d / "utt2emo", exclude=True))) == 4
    by_spk = list(dd.filter_scp(ids, d / "utt2spk", field=2))
    assert by_spk == []


def test_spk2utt_roundtrip():
    u2s = {"a1": "a", "a2": "a", "b1": "b"}
    s2u = dd.utt2spk_to_spk2utt(u2s)
    assert s2u == {"a": ["a1", "a2"], "b": ["b1"]}
    assert dd.spk2utt_to_utt2spk(s2u) == u2s


def test_one_speaker_is_valid_with_a_warning(tmp_path, caplog):
    import logging

    d = tmp_path / "d"
    d.mkdir()
    (d / "utt2spk").write_text("a s1\nb s1\n")
    (d / "spk2utt").write_text("s1 a b\n")
    (d / "wav.scp").write_text("a /x/a.wav\nb /x/b.wav\n")
    with caplog.at_level(logging.WARNING):
        assert dd.validate_data_dir(d) == 2
    assert "every utterance has one speaker ('s1')" in caplog.text
    caplog.clear()
    (d / "utt2spk").write_text("a s1\nb s2\n")
    (d / "spk2utt").write_text("s1 a\ns2 b\n")
    with caplog.at_level(logging.WARNING):
        dd.validate_data_dir(d)
    assert "one speaker" not in caplog.text
