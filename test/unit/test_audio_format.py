from pathlib import Path

import numpy as np
import pytest
import soundfile

from speechser.io.audio import AudioError, AudioReader, read_audio_source, resample
from speechser.io.datadir import read_kv, validate_data_dir
from speechser.io.format import format_data_dir
from conftest import write_lines, write_tone


def test_read_path_and_pipe(tmp_path: Path):
    wav = tmp_path / "a.wav"
    write_tone(wav, 0.5, 8000)
    x, sr = read_audio_source(str(wav), "a")
    assert sr == 8000 and x.shape == (4000,) and x.dtype == np.float32
    y, sr2 = read_audio_source(f"cat {wav} |", "a")
    assert sr2 == 8000 and np.array_equal(x, y)


def test_missing_empty_corrupt_files_name_utterance_and_path(tmp_path: Path):
    with pytest.raises(AudioError, match=r"utterance 'u1': audio file '.*nope.wav' does not exist"):
        read_audio_source(str(tmp_path / "nope.wav"), "u1")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match=r"utterance 'u2': audio file '.*empty.wav' is empty \(0 bytes\)"):
        read_audio_source(str(empty), "u2")
    good = tmp_path / "good.wav"
    write_tone(good, 1.0)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00junkjunkjunk" + good.read_bytes()[200:400])
    with pytest.raises(AudioError, match=r"utterance 'u3': cannot read audio '.*corrupt.wav'"):
        read_audio_source(str(corrupt), "u3")
    with pytest.raises(AudioError, match=r"utterance 'u4': command 'false ' failed"):
        read_audio_source("false |", "u4")


def test_truncated_file_is_error_or_short(tmp_path: Path):
    good = tmp_path / "good.wav"
    write_tone(good, 1.0)
    trunc = tmp_path / "trunc.wav"
    trunc.write_bytes(good.read_bytes()[:30])  # header cut in the middle
    with pytest.raises(AudioError, match="trunc.wav"):
        read_audio_source(str(trunc), "u")


def test_segments_and_resampling(tmp_path: Path):
    d = tmp_path / "d"
    d.mkdir()
    write_tone(tmp_path / "rec.wav", 2.0, 22050)
    write_lines(d / "wav.scp", {"rec": str(tmp_path / "rec.wav")})
    write_lines(d / "segments", {"rec-a": "rec 0.0 0.5", "rec-b": "rec 1.0 2.0"})
    reader = AudioReader(d, target_rate=16000)
    a, sr = reader["rec-a"]
    b, _ = reader["rec-b"]
    assert sr == 16000 and a.shape[0] == 8000 and b.shape[0] == 16000
    x = np.sin(2 * np.pi * 440 * np.arange(22050) / 22050).astype(np.float32)
    y = resample(x, 22050, 16000)
    assert y.shape[0] == 16000
    spec = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spec) - 440) <= 1  # the tone stays at 440 Hz


def test_format_skips_short_and_empty_with_counts(make_data_dir, tmp_path: Path):
    d = make_data_dir(rate=22050)
    wav = read_kv(d / "wav.scp")
    write_tone(Path(wav["spkA-u1"]), 0.2, 22050)  # too short
    soundfile.write(wav["spkB-u0"], np.zeros(0, dtype=np.float32), 22050)  # header only, no samples
    report = format_data_dir(d, tmp_path / "out", tmp_path / "wavs", 16000, 0.5)
    assert report.kept == 4
    assert report.skipped_short == ["spkA-u1"]
    assert report.skipped_empty == ["spkB-u0"]
    assert validate_data_dir(tmp_path / "out") == 4
    log = (tmp_path / "out" / "format.log").read_text()
    assert "skipped_short spkA-u1" in log and "skipped_empty spkB-u0" in log
    x, sr = soundfile.read(read_kv(tmp_path / "out" / "wav.scp")["spkA-u0"])
    assert sr == 16000 and len(x) == 16000


def test_format_missing_file_names_wav_scp_line(make_data_dir, tmp_path: Path):
    d = make_data_dir()
    Path(read_kv(d / "wav.scp")["spkA-u2"]).unlink()
    with pytest.raises(AudioError, match=r"wav.scp:3: utterance 'spkA-u2': audio file .* does not exist"):
        format_data_dir(d, tmp_path / "out", tmp_path / "wavs")


def test_speed_perturbation_changes_duration_and_pitch(make_data_dir, tmp_path: Path):
    from speechser.io.audio import speed_perturb
    from speechser.io.format import speed_perturb_data_dir

    x = np.sin(2 * np.pi * 400 * np.arange(16000) / 16000).astype(np.float32)
    y = speed_perturb(x, 16000, 1.1)
    assert abs(len(y) - 16000 / 1.1) <= 1
    peak = np.argmax(np.abs(np.fft.rfft(y))) * 16000 / len(y)
    assert abs(peak - 440) < 3
    d = make_data_dir()
    n = speed_perturb_data_dir(d, tmp_path / "sp", tmp_path / "spwav", 0.9)
    assert n == 6 and validate_data_dir(tmp_path / "sp") == 6
    assert list(read_kv(tmp_path / "sp" / "utt2spk").items())[0] == ("sp0.9-spkA-u0", "sp0.9-spkA")
    assert float(read_kv(tmp_path / "sp" / "utt2dur")["sp0.9-spkA-u0"]) == pytest.approx(1 / 0.9, abs=1e-3)


def test_format_carries_the_label_lists_as_copy_does(make_data_dir, tmp_path: Path):
    """Formatting writes its tables through the data directories' one writer: the label lists a copy
    carries (emotions.txt, labels.txt) reach the formatted directory too."""
    from speechser.io.datadir import LABEL_LISTS, copy_data_dir

    d = make_data_dir()
    for name in LABEL_LISTS:
        (d / name).write_text("ang\nneu\n")
    format_data_dir(d, tmp_path / "out", tmp_path / "wavs", 16000, 0.1)
    copy_data_dir(d, tmp_path / "copied")
    for name in LABEL_LISTS:
        assert (tmp_path / "out" / name).read_text() == (tmp_path / "copied" / name).read_text() == "ang\nneu\n"
