"""Issue 10, data directories: hostile inputs are refused with an error naming file and line,
never a file written outside its directory, a source destroyed or a file silently left stale."""

from __future__ import annotations

from pathlib import Path
from typing import Dict

import numpy as np
import pytest
import soundfile

from speechser.io import datadir as dd
from speechser.io.format import format_data_dir, speed_perturb_data_dir

BAD_KEY = "../../precious/keep"


def write_tone(path: Path, seconds: float = 1.0, rate: int = 16000) -> None:
    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(str(path), (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate, subtype="PCM_16")


def hostile_dir(tmp_path: Path, key: str = BAD_KEY) -> Path:
    """A data directory whose only utterance is ``key``, in every file."""
    d = tmp_path / "hostile"
    d.mkdir()
    write_tone(tmp_path / "tone.wav")
    (d / "wav.scp").write_text(f"{key} {tmp_path}/tone.wav\n")
    (d / "utt2spk").write_text(f"{key} spk\n")
    (d / "spk2utt").write_text(f"spk {key}\n")
    (d / "text").write_text(f"{key} hello\n")
    return d


def snapshot(d: Path) -> Dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- 1: keys that are paths


@pytest.mark.parametrize("key, problem", [
    (BAD_KEY, "'/'"), ("a/b", "'/'"), (".hidden", "starting with '.'"), ("bell\x07", "U+0007"),
])
def test_validation_rejects_keys_that_are_not_plain_names(tmp_path: Path, key: str, problem: str):
    d = hostile_dir(tmp_path, key)
    with pytest.raises(dd.DataDirError) as err:
        dd.validate_data_dir(d)
    assert f"{d}/" in str(err.value) and ":1: bad key" in str(err.value) and problem in str(err.value)


def test_validation_rejects_bad_speaker_and_recording_ids(make_data_dir):
    d = make_data_dir()
    utt2spk = dd.read_kv(d / "utt2spk")
    utt2spk = {u: "../x" if s == "spkB" else s for u, s in utt2spk.items()}
    dd.write_kv(d / "utt2spk", utt2spk)
    dd.write_spk2utt(d / "spk2utt", dd.utt2spk_to_spk2utt(utt2spk))
    with pytest.raises(dd.DataDirError, match=r"spk2utt:1: bad key '\.\./x'|utt2spk:4 \(speaker id\)"):
        dd.validate_data_dir(d)


def test_safe_key_filename():
    assert dd.safe_key_filename("spkA-u0", "x/utt2spk:1", ".wav") == "spkA-u0.wav"
    for key in (BAD_KEY, "a/b", ".x", "..", "", "a b", "a\x00b"):
        with pytest.raises(dd.DataDirError, match="x/utt2spk:3: bad key"):
            dd.safe_key_filename(key, "x/utt2spk:3", ".wav")


def test_format_audio_never_writes_outside_audio_dir(tmp_path: Path):
    d = hostile_dir(tmp_path)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.wav").write_bytes(b"precious")
    (tmp_path / "out").mkdir()
    with pytest.raises(dd.DataDirError, match=r"hostile/utt2spk:1: bad key '\.\./\.\./precious/keep'"):
        format_data_dir(d, tmp_path / "out/data", tmp_path / "out/wav")
    assert (precious / "keep.wav").read_bytes() == b"precious"
    assert not (tmp_path / "out/wav").exists() and not (tmp_path / "out/data").exists()


def test_format_audio_key_with_slash_is_a_clear_error(tmp_path: Path):
    d = hostile_dir(tmp_path, "sub/utt1")
    with pytest.raises(dd.DataDirError, match=r"utt2spk:1: bad key 'sub/utt1'"):
        format_data_dir(d, tmp_path / "out", tmp_path / "wav")


def test_speed_perturb_and_fbank_check_keys(tmp_path: Path):
    from speechser.features.extract import extract_fbank

    d = hostile_dir(tmp_path, "a/b")
    with pytest.raises(dd.DataDirError, match="utt2spk:1: bad key 'sp0.9-a/b'"):
        speed_perturb_data_dir(d, tmp_path / "sp", tmp_path / "sp_wav", 0.9)
    assert not (tmp_path / "sp_wav").exists()
    with pytest.raises(dd.DataDirError, match="utt2spk:1: bad key 'a/b'"):
        extract_fbank(d, tmp_path / "feats/raw")


def test_copy_refuses_a_prefix_that_makes_bad_keys(make_data_dir, tmp_path: Path):
    d = make_data_dir()
    with pytest.raises(dd.DataDirError, match=r"utt2spk:1 \(renamed 'spkA-u0'\): bad key 'x/spkA-u0'"):
        dd.copy_data_dir(d, tmp_path / "c", utt_prefix="x/")
    assert not (tmp_path / "c").exists()


# ---------------------------------------------------------------- 3: source = destination


def test_subset_copy_combine_refuse_same_or_nested_dirs(make_data_dir, tmp_path: Path):
    d = make_data_dir()
    before = snapshot(d)
    with pytest.raises(dd.DataDirError, match="same directory"):
        dd.subset_data_dir(d, d, first=3)
    with pytest.raises(dd.DataDirError, match="same directory"):
        dd.copy_data_dir(d, d, utt_prefix="x-")
    with pytest.raises(dd.DataDirError, match="inside source"):
        dd.copy_data_dir(d, d / "sub")
    with pytest.raises(dd.DataDirError, match="contains source"):
        dd.subset_data_dir(d, tmp_path, first=3)
    other = make_data_dir(name="other")
    with pytest.raises(dd.DataDirError, match="same directory"):
        dd.combine_data(d, [d, other])
    assert snapshot(d) == before


# ---------------------------------------------------------------- 4: fix twice keeps all originals


def test_fix_twice_keeps_every_set_of_originals(make_data_dir):
    d = make_data_dir()
    original = (d / "utt2emo").read_text()
    emo = dd.read_kv(d / "utt2emo")
    del emo["spkB-u1"]
    dd.write_kv(d / "utt2emo", emo)
    first_input = (d / "utt2spk").read_text()
    dd.fix_data_dir(d)
    fixed = (d / "utt2spk").read_text()
    dd.fix_data_dir(d)
    assert (d / ".backup/1/utt2spk").read_text() == first_input  # the real originals survive
    assert (d / ".backup/2/utt2spk").read_text() == fixed
    assert (d / ".backup/utt2spk").read_text() == fixed  # Kaldi's layout: the latest run's
    assert original != (d / ".backup/1/utt2emo").read_text()


def test_fix_keeps_a_backup_from_before_numbering(make_data_dir):
    d = make_data_dir()
    (d / ".backup").mkdir()
    (d / ".backup/utt2spk").write_text("old originals\n")
    dd.fix_data_dir(d)
    assert (d / ".backup/1/utt2spk").read_text() == "old originals\n"
    assert (d / ".backup/2/utt2spk").read_text() == (d / "utt2spk").read_text()


# ---------------------------------------------------------------- 5: every utt2* file is carried


def add_utt2age(d: Path, extra: bool = True) -> None:
    table = {u: str(20 + i) for i, u in enumerate(dd.read_kv(d / "utt2spk"))}
    if extra:
        table["zzz-stray"] = "99"
    (d / "utt2age").write_text("".join(f"{k} {v}\n" for k, v in sorted(table.items(), reverse=True)))
    (d / "utt2arousal").write_text("".join(f"{k} 0.5\n" for k in table))


def test_fix_filters_unknown_utt2_files(make_data_dir):
    d = make_data_dir()
    add_utt2age(d)
    emo = dd.read_kv(d / "utt2emo")
    del emo["spkA-u1"]
    dd.write_kv(d / "utt2emo", emo)
    dd.fix_data_dir(d)
    kept = list(dd.read_kv(d / "utt2spk"))
    assert "spkA-u1" not in kept
    for name in ("utt2age", "utt2arousal"):
        assert list(dd.read_kv(d / name)) == kept, name
        assert "zzz-stray" in (d / ".backup/1" / name).read_text()


def test_subset_copy_combine_folds_carry_utt2_files(make_data_dir, tmp_path: Path):
    from speechser.bin.make_folds import main as make_folds

    d = make_data_dir(n_spk=3)
    add_utt2age(d, extra=False)
    dd.subset_data_dir(d, tmp_path / "sub", first=2)
    assert list(dd.read_kv(tmp_path / "sub/utt2age")) == ["spkA-u0", "spkA-u1"]
    dd.copy_data_dir(d, tmp_path / "cp", utt_prefix="p-")
    assert list(dd.read_kv(tmp_path / "cp/utt2arousal")) == [f"p-{u}" for u in dd.read_kv(d / "utt2spk")]
    dd.copy_data_dir(d, tmp_path / "cp2", utt_prefix="q-", spk_prefix="q-")
    dd.combine_data(tmp_path / "comb", [tmp_path / "cp", tmp_path / "cp2"])
    assert len(dd.read_kv(tmp_path / "comb/utt2age")) == 18
    assert make_folds([str(d), str(tmp_path / "folds"), "--protocol", "loso"]) == 0
    test = tmp_path / "folds/fold1/test"
    assert list(dd.read_kv(test / "utt2age")) == list(dd.read_kv(test / "utt2spk"))


def test_format_audio_carries_utt2_files(make_data_dir, tmp_path: Path):
    d = make_data_dir()
    add_utt2age(d, extra=False)
    format_data_dir(d, tmp_path / "fmt", tmp_path / "fmt_wav")
    assert list(dd.read_kv(tmp_path / "fmt/utt2age")) == list(dd.read_kv(d / "utt2spk"))


# ---------------------------------------------------------------- 6: no stale files in a destination


def test_subset_into_existing_dir_leaves_no_stale_files(make_data_dir, tmp_path: Path):
    d = make_data_dir()
    out = tmp_path / "out"
    dd.copy_data_dir(d, out)
    dd.write_kv(out / "feats.scp", {u: "old.ark:1" for u in dd.read_kv(out / "utt2spk")})
    (out / "utt2age").write_text("spkA-u0 1\n")
    (out / "cmvn.ark").write_text("stale")
    dd.subset_data_dir(d, out, first=2)
    assert not (out / "feats.scp").exists() and not (out / "utt2age").exists() and not (out / "cmvn.ark").exists()
    assert list(dd.read_kv(out / "utt2spk")) == ["spkA-u0", "spkA-u1"]
    dd.validate_data_dir(out)


def test_subset_refuses_a_destination_that_is_not_a_data_dir(make_data_dir, tmp_path: Path):
    d = make_data_dir()
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    with pytest.raises(dd.DataDirError, match="not a data directory"):
        dd.subset_data_dir(d, home, first=2)
    assert (home / "notes.txt").read_text() == "mine" and not (home / "utt2spk").exists()


# ---------------------------------------------------------------- 7: segments beyond the recording


def segments_dir(tmp_path: Path, end: float) -> Path:
    d = tmp_path / "seg"
    d.mkdir()
    write_tone(tmp_path / "rec.wav", seconds=2.0)
    (d / "wav.scp").write_text(f"rec1 {tmp_path}/rec.wav\n")
    (d / "segments").write_text(f"u0 rec1 0.0 1.0\nu1 rec1 1.0 {end}\n")
    (d / "utt2spk").write_text("u0 s\nu1 s\n")
    (d / "spk2utt").write_text("s u0 u1\n")
    return d


def test_segment_end_beyond_recording_is_an_error(tmp_path: Path):
    d = segments_dir(tmp_path, 3.5)
    with pytest.raises(dd.DataDirError) as err:
        dd.validate_data_dir(d)
    msg = str(err.value)
    assert f"{d}/segments:2: segment 'u1' ends at 3.5 s, after the end of recording 'rec1' (2.000 s" in msg
    with pytest.raises(dd.DataDirError, match="segments:2"):
        format_data_dir(d, tmp_path / "fmt", tmp_path / "fmt_wav")
    # reco2dur, when there, is what decides (no audio is opened)
    (d / "reco2dur").write_text("rec1 4.0\n")
    dd.validate_data_dir(d)
    (d / "reco2dur").write_text("rec1 3.0\n")
    with pytest.raises(dd.DataDirError, match=r"segments:2: .* \(3\.000 s, from .*reco2dur:1\)"):
        dd.validate_data_dir(d)


def test_segment_end_within_recording_passes(tmp_path: Path):
    d = segments_dir(tmp_path, 2.0)
    assert dd.validate_data_dir(d) == 2


def test_cmvn_without_features_names_the_file(make_data_dir, run_main):
    """Found while trying more hostile cases: speechser-compute-cmvn on a directory without feats.scp
    ended in a bare FileNotFoundError traceback."""
    d = make_data_dir(n_spk=1, n_utt=2)
    proc = run_main("compute_cmvn", d)
    assert proc.returncode == 1
    assert f"{d}/feats.scp: no such file" in proc.stderr and "Traceback" not in proc.stderr


def test_fbank_options_out_of_range_name_the_option(make_data_dir, tmp_path, run_main):
    """--num-mel-bins 0 ended in torchaudio's bare AssertionError ("Must have at least 3 mel bins")."""
    d = make_data_dir(n_spk=1, n_utt=1)
    proc = run_main("compute_fbank", d, tmp_path / "raw", "--num-mel-bins", "0")
    assert proc.returncode == 1
    assert "'num_mel_bins': 0 is out of range" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_main("compute_fbank", d, tmp_path / "raw", "--frame-shift-ms", "-10")
    assert proc.returncode == 1 and "'frame_shift_ms'" in proc.stderr


def test_a_no_break_space_after_a_key_is_not_a_silent_split(make_data_dir):
    """Beyond the issue's cases: Python's split() cut 's1\\xa0x HELLO' into key 's1' and text 'x HELLO',
    so validation passed and the transcript silently gained a word. Kaldi's keys end at a space or tab."""
    d = make_data_dir(n_spk=1, n_utt=2)
    text = (d / "text").read_text().splitlines()
    text[0] = text[0].replace(" ", "\u00a0x ", 1)
    (d / "text").write_text("\n".join(text) + "\n")
    with pytest.raises(dd.DataDirError, match=r"text:1: bad key .*white space in a key"):
        dd.validate_data_dir(d)
