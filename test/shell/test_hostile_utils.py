"""Issue 10, the utils/ tools run as a recipe runs them: bad options and same/nested directories are
refused before anything is touched, and a failed feature extraction leaves the old features in place."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict

import numpy as np
import pytest
import soundfile

from speechser.io import datadir as dd

ROOT = Path(__file__).resolve().parents[2]
UTILS = ROOT / "utils"


def run(*args, check=True, cwd=None):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    proc = subprocess.run([str(a) for a in args], env=env, capture_output=True, text=True, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def snapshot(d: Path) -> Dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def keys(path: Path):
    return list(dd.read_kv(path))


def make_fbank(*args, check=True):
    return run(UTILS / "make_fbank.sh", "--cmd", UTILS / "run.pl", "--num_mel_bins", "23", *args,
               check=check, cwd=ROOT)


# ---------------------------------------------------------------- 1: keys that are paths


def test_format_audio_cli_refuses_a_key_that_escapes(tmp_path: Path):
    d = tmp_path / "d"
    d.mkdir()
    soundfile.write(str(tmp_path / "tone.wav"), np.full(16000, 0.1, dtype=np.float32), 16000, subtype="PCM_16")
    key = "../../precious/keep"
    (d / "wav.scp").write_text(f"{key} {tmp_path}/tone.wav\n")
    (d / "utt2spk").write_text(f"{key} s\n")
    (d / "spk2utt").write_text(f"s {key}\n")
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious/keep.wav").write_bytes(b"precious")
    bad = run(UTILS / "validate_data_dir.sh", "--no-feats", "--no-text", d, check=False)
    assert bad.returncode == 1 and f"{d}/" in bad.stderr and ":1: bad key '../../precious/keep'" in bad.stderr
    bad = run("speechser-format-audio", d, tmp_path / "out/data", "--audio-dir", tmp_path / "out/wav", check=False)
    assert bad.returncode == 1 and f"{d}/utt2spk:1: bad key" in bad.stderr
    assert (tmp_path / "precious/keep.wav").read_bytes() == b"precious"


# ---------------------------------------------------------------- 2, 9: make_fbank.sh


def test_make_fbank_refuses_same_and_nested_dirs_before_touching(make_data_dir, tmp_path: Path):
    d = make_data_dir()
    before = snapshot(d)
    for dst, what in ((d, "same directory"), (tmp_path, "contains source"), (d / "feats", "inside source")):
        bad = make_fbank("--nj", "1", d, dst, check=False)
        assert bad.returncode == 1 and what in bad.stderr, bad.stderr
        assert snapshot(d) == before


@pytest.mark.parametrize("nj", ["0", "-2", "two", ""])
def test_make_fbank_bad_nj_is_an_error_naming_the_option(make_data_dir, tmp_path: Path, nj: str):
    d = make_data_dir()
    old = tmp_path / "old"
    old.mkdir()
    (old / "feats.scp").write_text("keep me\n")
    bad = make_fbank("--nj", nj, d, old, check=False)
    # (utils/parse_options.sh may refuse it first; make_fbank.sh checks it again itself)
    assert bad.returncode == 1 and "--nj must be" in bad.stderr and f">= 1, got '{nj}'" in bad.stderr
    assert (old / "feats.scp").read_text() == "keep me\n"


def test_make_fbank_more_jobs_than_speakers_falls_back(make_data_dir, tmp_path: Path):
    d = make_data_dir(n_spk=2, n_utt=2, seconds=0.3)
    out = make_fbank("--nj", "100", d, tmp_path / "fb")
    assert "--nj 100 is more than the 2 speaker(s)" in out.stderr and "using --nj 2" in out.stderr
    assert keys(tmp_path / "fb/feats.scp") == keys(d / "utt2spk")
    # the archives the scp names are where the scp says (not in the temporary build folder)
    for value in dd.read_kv(tmp_path / "fb/feats.scp").values():
        assert value.startswith(f"{tmp_path.resolve()}/fb/data/raw_fbank."), value
    assert not list(tmp_path.glob("fb.new.*"))
    from speechser.features.extract import read_fbank_options

    assert read_fbank_options(tmp_path / "fb").num_mel_bins == 23


def test_make_fbank_failure_keeps_the_old_features(make_data_dir, tmp_path: Path):
    d = make_data_dir(n_spk=2, n_utt=2, seconds=0.3)
    make_fbank("--nj", "1", d, tmp_path / "fb")
    before = snapshot(tmp_path / "fb")
    wav = dd.read_kv(d / "wav.scp")
    Path(wav["spkB-u1"]).write_bytes(b"")  # a job fails on it
    bad = make_fbank("--nj", "2", d, tmp_path / "fb", check=False)
    assert bad.returncode != 0
    assert snapshot(tmp_path / "fb") == before
    assert not list(tmp_path.glob("fb.new.*"))


# ---------------------------------------------------------------- 3: subset/copy/combine in place


def test_data_tools_refuse_in_place(make_data_dir, tmp_path: Path):
    d = make_data_dir()
    other = make_data_dir(name="other")
    before = snapshot(d)
    for args in (("subset_data_dir.sh", "--first", "3", d, d), ("subset_data_dir.sh", "--first", d, "3", d),
                 ("copy_data_dir.sh", "--utt-prefix", "x-", d, d), ("copy_data_dir.sh", d, d / "x"),
                 ("combine_data.sh", d, d, other), ("combine_data.sh", tmp_path, d, other)):
        bad = run(UTILS / args[0], *args[1:], check=False)
        assert bad.returncode == 1 and "error:" in bad.stderr and ("same directory" in bad.stderr
                                                                   or "source" in bad.stderr), (args, bad.stderr)
        assert snapshot(d) == before, args


# ---------------------------------------------------------------- 4, 5, 6


def test_fix_twice_keeps_numbered_backups(make_data_dir):
    d = make_data_dir()
    (d / "utt2age").write_text("spkZ-u9 1\nspkA-u0 30\n")
    run(UTILS / "fix_data_dir.sh", d)
    run(UTILS / "fix_data_dir.sh", d)
    assert (d / ".backup/1/utt2age").read_text() == "spkZ-u9 1\nspkA-u0 30\n"
    assert (d / ".backup/2/utt2age").read_text() == "spkA-u0 30\n"
    assert (d / "utt2age").read_text() == "spkA-u0 30\n"


def test_subset_into_existing_dir_drops_stale_feats(make_data_dir, tmp_path: Path):
    d = make_data_dir()
    run(UTILS / "subset_data_dir.sh", "--first", "4", d, tmp_path / "s")
    dd.write_kv(tmp_path / "s/feats.scp", {u: "x.ark:1" for u in keys(tmp_path / "s/utt2spk")})
    out = run(UTILS / "subset_data_dir.sh", "--last", "2", d, tmp_path / "s")
    assert not (tmp_path / "s/feats.scp").exists() and "stale" in out.stderr
    assert "OK (2 utterances)" in run(UTILS / "validate_data_dir.sh", "--no-feats", tmp_path / "s").stdout


# ---------------------------------------------------------------- 8: Kaldi flag spellings


def test_copy_suffix_starting_with_dash(make_data_dir, tmp_path: Path):
    d = make_data_dir()
    run(UTILS / "copy_data_dir.sh", "--utt-suffix", "-x", "--spk-suffix=-y", d, tmp_path / "c")
    assert dd.read_kv(tmp_path / "c/utt2spk")["spkA-u0-x"] == "spkA-y"
    run(UTILS / "copy_data_dir.sh", "--utt-suffix=-z", d, tmp_path / "c2")
    assert keys(tmp_path / "c2/utt2spk")[0] == "spkA-u0-z"


def test_underscore_option_spellings(make_data_dir, tmp_path: Path):
    d = make_data_dir()
    (d / "spk2age").write_text("spkZ 9\nspkA 20\nspkB 30\n")
    run(UTILS / "fix_data_dir.sh", "--spk_extra_files", "spk2age", d)
    assert (d / "spk2age").read_text() == "spkA 20\nspkB 30\n"
    run(UTILS / "fix_data_dir.sh", "--utt_extra_files", "utt2lang", d)
    run(UTILS / "copy_data_dir.sh", "--utt_prefix", "p-", "--validate_opts", "--no-feats", d, tmp_path / "c")
    assert keys(tmp_path / "c/utt2spk")[0] == "p-spkA-u0"
    (tmp_path / "list").write_text("spkA-u1\n")
    run(UTILS / "subset_data_dir.sh", "--utt_list", tmp_path / "list", d, tmp_path / "s")
    assert keys(tmp_path / "s/utt2spk") == ["spkA-u1"]
    run(UTILS / "combine_data.sh", "--skip_fix", "--extra_files", "spk2age", tmp_path / "comb", d)
    assert (tmp_path / "comb/spk2age").is_file()
