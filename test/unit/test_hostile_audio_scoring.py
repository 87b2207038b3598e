"""Hostile inputs to audio reading, token lists, feature reading and scoring (issue 10: nothing lost,
nothing silently wrong). Each test fails on the code before the fix."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from conftest import write_lines, write_tone
from speechser.io.audio import AudioError, TruncatedAudioError, read_audio_source
from speechser.io.datadir import DataDirError


# --- 1. a WAV cut inside its data chunk -------------------------------------------------------------

def _cut_wav(tmp_path: Path, seconds: float = 2.0, keep: float = 1.0, rate: int = 16000) -> Path:
    full = tmp_path / "full.wav"
    write_tone(full, seconds, rate)
    data = full.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: 44 + int(keep * rate) * 2])  # 44-byte header, 16-bit mono
    return cut


def test_truncated_wav_is_an_error_naming_the_file(tmp_path: Path):
    cut = _cut_wav(tmp_path)
    assert soundfile.info(str(cut)).frames == 16000  # libsndfile quietly reports the 1.0 s it finds
    with pytest.raises(TruncatedAudioError, match=r"utterance 'u1': audio '.*cut\.wav' is truncated.*64000 bytes.*32000"):
        read_audio_source(str(cut), "u1")
    with pytest.raises(TruncatedAudioError, match=r"utterance 'u2': audio 'cat .*cut\.wav ' is truncated"):
        read_audio_source(f"cat {cut} |", "u2")
    assert issubclass(TruncatedAudioError, AudioError)  # callers that stop on AudioError stop here too


def test_intact_and_streamed_wavs_still_read(tmp_path: Path):
    full = tmp_path / "ok.wav"
    write_tone(full, 1.0)
    x, sr = read_audio_source(str(full), "ok")
    assert x.shape == (16000,) and sr == 16000
    # a WAV streamed to a pipe leaves the data size unknown (0xFFFFFFFF): not judged as truncated
    data = bytearray(full.read_bytes())
    pos = data.index(b"data")
    data[pos + 4:pos + 8] = b"\xff\xff\xff\xff"
    streamed = tmp_path / "streamed.wav"
    streamed.write_bytes(bytes(data))
    y, _ = read_audio_source(str(streamed), "s")
    assert y.shape[0] == 16000


def test_format_stage_stops_on_truncated_audio(tmp_path: Path):
    from speechser.io.format import format_data_dir

    cut = _cut_wav(tmp_path)
    good = tmp_path / "good.wav"
    write_tone(good, 1.0)
    src = tmp_path / "src"
    src.mkdir()
    write_lines(src / "wav.scp", {"a": str(good), "b": str(cut)})
    write_lines(src / "utt2spk", {"a": "s", "b": "s"})
    write_lines(src / "spk2utt", {"s": "a b"})
    with pytest.raises(AudioError, match=r"wav.scp:2: .*cut\.wav' is truncated"):
        format_data_dir(src, tmp_path / "dst", tmp_path / "audio")
    # asked for, a truncated file is a logged, counted skip instead
    report = format_data_dir(src, tmp_path / "dst", tmp_path / "audio", skip_truncated=True)
    assert report.kept == 1 and report.skipped_truncated == ["b"] and "1 truncated" in report.summary()
    assert "skipped_truncated b" in (tmp_path / "dst" / "format.log").read_text()


# --- 2. float audio beyond [-1, 1] -------------------------------------------------------------------

def test_float_wav_beyond_full_scale_is_normalized_with_a_warning(tmp_path: Path, caplog):
    t = np.arange(16000) / 16000
    x = (50.0 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    loud = tmp_path / "loud.wav"
    soundfile.write(str(loud), x, 16000, subtype="FLOAT")
    with caplog.at_level(logging.WARNING):
        y, _ = read_audio_source(str(loud), "loud")
    peak = float(np.abs(x).max())
    assert np.abs(y).max() <= 1.0 + 1e-6
    np.testing.assert_allclose(y, x / peak, atol=1e-6)  # scaled, not clipped: the waveform keeps its shape
    msg = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    assert "loud.wav" in msg and "peak 50" in msg and "scaled" in msg


def test_format_stage_does_not_hard_clip_loud_float_audio(tmp_path: Path, caplog):
    from speechser.io.format import format_data_dir

    t = np.arange(16000) / 16000
    x = (50.0 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    soundfile.write(str(tmp_path / "loud.wav"), x, 16000, subtype="FLOAT")
    src = tmp_path / "src"
    src.mkdir()
    write_lines(src / "wav.scp", {"a": str(tmp_path / "loud.wav")})
    write_lines(src / "utt2spk", {"a": "s"})
    write_lines(src / "spk2utt", {"s": "a"})
    with caplog.at_level(logging.WARNING):
        format_data_dir(src, tmp_path / "dst", tmp_path / "audio")
    y, _ = soundfile.read(str(tmp_path / "audio" / "a.wav"), dtype="float32")
    # the waveform is kept (scaled by 1/peak), not flattened at full scale
    np.testing.assert_allclose(y, x / np.abs(x).max(), atol=1e-3)
    assert any("loud.wav" in r.getMessage() for r in caplog.records)


# --- 3. a token list from an empty text --------------------------------------------------------------

@pytest.mark.parametrize("content", ["", "utt1\nutt2  \n"])
def test_make_tokens_refuses_empty_text(tmp_path: Path, capsys, content: str):
    from speechser.bin.make_tokens import main

    text = tmp_path / "text"
    text.write_text(content)
    rc = main([str(text), str(tmp_path / "tokens")])
    err = capsys.readouterr().err
    assert rc != 0 and str(text) in err and ("empty" in err or "no lines" in err)
    assert not (tmp_path / "tokens" / "tokens.txt").exists()


# --- decode directories for the scoring tests ---------------------------------------------------------

def _ser_decode(d: Path, checkpoint: Path | None = None) -> Path:
    d.mkdir(parents=True)
    write_lines(d / "ref", {"u1": "ang", "u2": "neu", "u3": "ang"})
    write_lines(d / "hyp", {"u1": "ang", "u2": "ang", "u3": "ang"})
    meta = {"ua": 0.5, "n": 3}
    if checkpoint is not None:
        meta["checkpoint"] = str(checkpoint)
    (d / "scores.json").write_text(json.dumps(meta))
    return d


def _asr_decode(d: Path, checkpoint: Path | None = None, scores_json: bool = True) -> Path:
    from speechser.metrics.asr import write_asr_scores

    refs = {"u1": "a b", "u2": "c d"}
    write_asr_scores(refs, {"u1": "a b", "u2": "c"}, d)
    write_lines(d / "text", {"u1": "a b", "u2": "c"})
    if scores_json:
        meta = {"wer": 0.25, "n": 2, "n_ref": 2}
        if checkpoint is not None:
            meta["checkpoint"] = str(checkpoint)
        (d / "scores.json").write_text(json.dumps(meta))
    return d


def _labels(tmp_path: Path) -> Path:
    path = tmp_path / "emotions.txt"
    path.write_text("ang\nneu\n")
    return path


# --- 4. the same decode directory twice ---------------------------------------------------------------

def test_score_ser_refuses_a_directory_given_twice(tmp_path: Path, capsys):
    from speechser.bin.score_ser import main

    d = _ser_decode(tmp_path / "exp" / "fold1" / "decode_test")
    same = tmp_path / "exp" / "fold1" / ".." / "fold1" / "decode_test"
    rc = main(["--label-list", str(_labels(tmp_path)), "--out-dir", str(tmp_path / "scores"), str(d), str(same)])
    err = capsys.readouterr().err
    assert rc == 1 and "given twice" in err and "decode_test" in err
    assert not (tmp_path / "scores" / "scores.tsv").exists()


def test_score_ser_refuses_two_directories_of_one_fold(tmp_path: Path, capsys):
    from speechser.bin.score_ser import main

    a = _ser_decode(tmp_path / "a" / "fold1" / "decode_test")
    b = _ser_decode(tmp_path / "b" / "fold1" / "decode_test")
    rc = main(["--label-list", str(_labels(tmp_path)), "--out-dir", str(tmp_path / "scores"), str(a), str(b)])
    assert rc == 1 and "both fold 'fold1'" in capsys.readouterr().err


def test_score_asr_refuses_a_directory_given_twice(tmp_path: Path, capsys):
    from speechser.bin.score_asr import main

    d = _asr_decode(tmp_path / "exp" / "decode_test")
    rc = main(["--results-md", str(tmp_path / "RESULTS.md"), str(d), f"{d}/"])
    assert rc == 1 and "given twice" in capsys.readouterr().err
    assert not (tmp_path / "RESULTS.md").exists()


def test_compare_ser_refuses_a_scores_file_given_twice(tmp_path: Path, capsys):
    from speechser.bin.compare_ser import main

    tsv = tmp_path / "scores.tsv"
    tsv.write_text("fold\tn\tua\twa\tmacro_f1\nfold1\t3\t0.5\t0.6\t0.4\n")
    rc = main(["ref=" + str(tsv), "again=" + str(tmp_path / "." / "scores.tsv")])
    assert rc == 1 and "given twice" in capsys.readouterr().err


# --- 5. missing feature archives, missing scores.json ---------------------------------------------------

def _break_scp(d: Path, line: int, ark: str) -> str:
    lines = (d / "feats.scp").read_text().splitlines()
    key, value = lines[line - 1].split(" ", 1)
    lines[line - 1] = f"{key} {ark}:{value.rsplit(':', 1)[1]}"
    (d / "feats.scp").write_text("\n".join(lines) + "\n")
    return key


def test_feats_scp_pointing_to_a_missing_ark_names_scp_line_and_ark(make_feats_dir, tmp_path: Path):
    from speechser.data.ser_dataset import FeatsLabelDataset

    d = make_feats_dir(n_spk=1, n_utt=3)
    key = _break_scp(d, 2, str(tmp_path / "gone.ark"))
    for preload in (True, False):
        with pytest.raises(DataDirError, match=rf"feats\.scp:2: utterance '{key}': feature archive '.*gone\.ark' does not exist"):
            FeatsLabelDataset(d, ["ang", "neu"], preload=preload)


def test_feats_scp_pointing_to_a_corrupt_ark_names_scp_and_key(make_feats_dir, tmp_path: Path):
    from speechser.data.ser_dataset import FeatsLabelDataset

    d = make_feats_dir(n_spk=1, n_utt=3)
    junk = tmp_path / "junk.ark"
    junk.write_bytes(b"\x00garbage" * 200)
    key = _break_scp(d, 3, str(junk))
    with pytest.raises(DataDirError, match=rf"feats\.scp:3: utterance '{key}': cannot read features '.*junk\.ark"):
        FeatsLabelDataset(d, ["ang", "neu"], preload=True)


def test_asr_dataset_missing_ark_names_scp_line_and_ark(make_feats_dir, tmp_path: Path):
    from speechser.data.asr_dataset import FeatsTextDataset
    from speechser.text.tokenizer import GraphemeTokenizer

    d = make_feats_dir(n_spk=1, n_utt=3)
    key = _break_scp(d, 1, str(tmp_path / "gone.ark"))
    tok = GraphemeTokenizer(GraphemeTokenizer.build_token_list(["hello 0", "hello 1", "hello 2"]))
    with pytest.raises(DataDirError, match=rf"feats\.scp:1: utterance '{key}': feature archive '.*gone\.ark' does not exist"):
        FeatsTextDataset(d, tok, unalignable="keep")


def test_score_asr_without_scores_json_names_the_file(tmp_path: Path, capsys):
    from speechser.bin.score_asr import main

    d = _asr_decode(tmp_path / "exp" / "decode_test", scores_json=False)
    rc = main(["--results-md", str(tmp_path / "RESULTS.md"), str(d)])
    assert rc == 1 and f"{d}/scores.json: no such file" in capsys.readouterr().err
    (d / "scores.json").write_text("{not json")
    rc = main(["--results-md", str(tmp_path / "RESULTS.md"), str(d)])
    assert rc == 1 and f"{d}/scores.json: cannot read it as JSON" in capsys.readouterr().err


def test_score_challenge_with_broken_scores_json_names_the_file(tmp_path: Path, capsys):
    from speechser.bin.score_challenge import main

    asr = _asr_decode(tmp_path / "decode_asr")
    (asr / "scores.json").write_text("")
    ser = _ser_decode(tmp_path / "ser")
    label_map = tmp_path / "map.yaml"
    label_map.write_text("ang: negative\nneu: neutral\n")
    rc = main(["--asr-dir", str(asr), "--ser-dir", str(ser), "--label-map", str(label_map)])
    assert rc == 1 and f"{asr}/scores.json: cannot read it as JSON" in capsys.readouterr().err


# --- 6. scoring output older than its model ---------------------------------------------------------------

def _newer(path: Path, than: Path) -> None:
    t = than.stat().st_mtime + 60
    os.utime(path, (t, t))


def test_score_ser_refuses_output_older_than_its_checkpoint(tmp_path: Path, capsys):
    from speechser.bin.score_ser import main

    ckpt = tmp_path / "exp" / "fold1" / "valid.ua.best.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"weights")
    d = _ser_decode(tmp_path / "exp" / "fold1" / "decode_test", checkpoint=ckpt)
    args = ["--label-list", str(_labels(tmp_path)), "--out-dir", str(tmp_path / "scores"), str(d)]
    _newer(d / "hyp", ckpt)
    _newer(d / "scores.json", ckpt)
    assert main(args) == 0  # decoded after the model was written: fine
    capsys.readouterr()
    time.sleep(0.01)
    _newer(ckpt, d / "hyp")  # the model was retrained, the decode failed and left the old output
    rc = main(args)
    err = capsys.readouterr().err
    assert rc == 1 and "older than the checkpoint" in err and "valid.ua.best.pt" in err and "decode_test" in err


def test_score_asr_refuses_output_older_than_its_checkpoint(tmp_path: Path, capsys):
    from speechser.bin.score_asr import main

    ckpt = tmp_path / "exp" / "valid.acc.best.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"weights")
    d = _asr_decode(tmp_path / "exp" / "decode_test", checkpoint=ckpt)
    for name in ("result.wer.md", "result.cer.md", "scores.json"):
        _newer(ckpt, d / name)
    rc = main(["--results-md", str(tmp_path / "RESULTS.md"), str(d)])
    err = capsys.readouterr().err
    assert rc == 1 and "older than the checkpoint" in err and "valid.acc.best.pt" in err
    assert not (tmp_path / "RESULTS.md").exists()
