"""The openSMILE front-end (issue 14): its values are the opensmile package's on real Emo-DB audio, it
goes through the Kaldi-style feature stage (utils/make_fbank.sh --feats_type), and bad audio is an error
naming the utterance."""

import json
import subprocess
from pathlib import Path

import kaldiio
import numpy as np
import pytest

from speechser.features.opensmile_feats import (
    OpenSmileOptions,
    compute_opensmile,
    extract_opensmile,
    make_smile,
    read_opensmile_options,
)

ROOT = Path(__file__).resolve().parents[2]
UTTS = ["03a01Fa", "03a01Nc", "08a01Ab", "08a01Lc"]


ENV = {"PATH": f"{ROOT / '.venv/bin'}:/usr/bin:/bin"}


def run_make_fbank(d: Path, out: Path, *opts: str) -> subprocess.CompletedProcess:
    """utils/make_fbank.sh with openSMILE functionals over 2 jobs; asserts it succeeded."""
    proc = subprocess.run(["bash", str(ROOT / "utils/make_fbank.sh"), "--nj", "2", "--cmd", str(ROOT / "utils/run.pl"),
                           "--feats_type", "opensmile_functionals", *opts, str(d), str(out)],
                          cwd=ROOT, capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, proc.stderr
    return proc


def emodb_dir(emodb: Path, tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    (d / "wav.scp").write_text("".join(f"{u} {emodb / 'wav' / (u + '.wav')}\n" for u in UTTS))
    (d / "utt2spk").write_text("".join(f"{u} {u[:2]}\n" for u in UTTS))
    (d / "spk2utt").write_text("03 03a01Fa 03a01Nc\n08 08a01Ab 08a01Lc\n")
    (d / "utt2emo").write_text("".join(f"{u} x\n" for u in UTTS))
    return d


@pytest.mark.parametrize("feature_set, level, dim", [("eGeMAPSv02", "functionals", 88), ("eGeMAPSv02", "lld", 25),
                                                     ("ComParE_2016", "functionals", 6373)])
def test_the_stored_features_are_the_opensmile_packages(emodb, tmp_path, feature_set, level, dim):
    import opensmile

    d = emodb_dir(emodb, tmp_path)
    opts = OpenSmileOptions(feature_set, level)
    assert extract_opensmile(d, tmp_path / "out" / "feats", opts=opts) == 4
    stored = kaldiio.load_scp(str(tmp_path / "out" / "feats.scp"))
    lvl = opensmile.FeatureLevel.Functionals if level == "functionals" else opensmile.FeatureLevel.LowLevelDescriptors
    smile = opensmile.Smile(feature_set=getattr(opensmile.FeatureSet, feature_set), feature_level=lvl)
    import soundfile as sf

    from speechser.io.audio import AudioReader

    audio = AudioReader(d, target_rate=16000)  # the corpus copy is 22.05 kHz: features are of the 16 kHz audio
    for u in UTTS[:2]:
        sf.write(tmp_path / f"{u}.wav", audio[u][0], 16000, subtype="FLOAT")
        want = smile.process_file(str(tmp_path / f"{u}.wav")).to_numpy(dtype=np.float32)
        got = stored[u]
        assert got.shape == want.shape and got.shape[1] == dim
        assert (level == "lld") or got.shape[0] == 1
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    table = json.loads((tmp_path / "out" / "feats.opensmile.json").read_text())
    assert table["feature_set"] == feature_set and len(table["feature_names"]) == dim


def test_bad_audio_is_an_error_naming_the_utterance():
    smile = make_smile(OpenSmileOptions())
    with pytest.raises(ValueError, match="'u1': empty audio"):
        compute_opensmile(np.zeros(0), 16000, smile, "u1")
    with pytest.raises(ValueError, match="unknown openSMILE feature set"):
        OpenSmileOptions("GeMAPS")


def test_the_feature_stage_writes_opensmile_features_over_jobs(emodb, tmp_path):
    d = emodb_dir(emodb, tmp_path)
    out = tmp_path / "feats"
    run_make_fbank(d, out)
    assert (out / "utt2num_frames").read_text().split() == [x for u in UTTS for x in (u, "1")]
    opts = read_opensmile_options(out)
    assert opts["feature_set"] == "eGeMAPSv02" and opts["level"] == "functionals"
    mats = kaldiio.load_scp(str(out / "feats.scp"))
    assert all(mats[u].shape == (1, 88) for u in UTTS)
    # per-speaker statistics over the functionals (one row per utterance) give a z-normalization per speaker
    from speechser.features.extract import write_cmvn
    from speechser.features.fbank import CMVN
    from speechser.io.datadir import read_kv

    write_cmvn(out, per_speaker=True)
    cmvn = CMVN({k: np.asarray(v) for k, v in kaldiio.load_scp(str(out / "cmvn.scp")).items()},
                utt2spk=read_kv(out / "utt2spk"))
    normed = np.concatenate([cmvn(u, np.array(mats[u])) for u in UTTS[:2]])
    np.testing.assert_allclose(normed.mean(0), 0, atol=1e-3)
    bad = subprocess.run(["bash", str(ROOT / "utils/make_fbank.sh"), "--feats_type", "opensmile", str(d),
                          str(tmp_path / "x")], cwd=ROOT, capture_output=True, text=True, env=ENV)
    assert bad.returncode != 0
    assert "--feats_type must be fbank, opensmile_functionals, opensmile_lld, ssl_functionals or ssl_frames" in bad.stderr


def test_a_clipped_utterance_is_a_counted_skip_that_the_feature_stage_drops(emodb, tmp_path):
    import soundfile as sf

    smile = make_smile(OpenSmileOptions())
    t = np.arange(16000) / 16000
    loud = np.clip(3 * np.sin(2 * np.pi * 220 * t), -1, 1)  # about 80 % of the samples at full scale
    from speechser.features.extract import SkipUtterance

    with pytest.raises(SkipUtterance, match="clipped"):
        compute_opensmile(loud, 16000, smile, "u1", max_clipped_fraction=0.01)
    assert compute_opensmile(loud, 16000, smile, "u1", max_clipped_fraction=1.0).shape == (1, 88)
    with pytest.raises(ValueError, match="max_clipped_fraction"):
        OpenSmileOptions(max_clipped_fraction=2.0)
    # through the feature stage: the real utterances stay, the clipped one is dropped, listed and counted
    d = emodb_dir(emodb, tmp_path)
    sf.write(tmp_path / "loud.wav", loud, 16000)
    with open(d / "wav.scp", "a") as f:
        f.write(f"08zz {tmp_path / 'loud.wav'}\n")
    with open(d / "utt2spk", "a") as f:
        f.write("08zz 08\n")
    with open(d / "utt2emo", "a") as f:
        f.write("08zz x\n")
    (d / "spk2utt").write_text("03 03a01Fa 03a01Nc\n08 08a01Ab 08a01Lc 08zz\n")
    out = tmp_path / "feats"
    proc = run_make_fbank(d, out)
    assert "1 utterance(s) skipped" in proc.stderr and "08zz" in proc.stderr
    for name in ("feats.scp", "utt2spk", "utt2emo", "utt2num_frames"):
        assert [ln.split()[0] for ln in (out / name).read_text().splitlines()] == UTTS, name
    assert "08zz" not in (out / "spk2utt").read_text()
    skipped = "".join(p.read_text() for p in sorted((out / "data").glob("*.skipped")))
    assert skipped.startswith("08zz ") and "clipped" in skipped
