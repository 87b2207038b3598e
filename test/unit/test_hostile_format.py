"""Stage 2 (speechser-format-audio) and fix/validate on hostile inputs: the corpus's own audio is never
overwritten, an interrupted or failing run leaves the previous output as it was, a full or read-only
disk and undecodable data files are errors naming the user's file and line, and keys too long for a
file name still give correct output."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest
import soundfile

from speechser.bin.data_tools import fix_main, validate_main
from speechser.bin.format_audio import main as format_main
from speechser.io import datadir as dd
from conftest import write_tone


def snapshot(d: Path) -> Dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def leftovers(folder: Path) -> List[str]:
    """Temporary siblings (``<name>.new.<pid>``, ``<name>.old.<pid>``) left anywhere under ``folder``."""
    return sorted(str(p) for p in folder.rglob("*") if ".new." in p.name or ".old." in p.name)


def fmt(capsys, *args: object) -> "tuple[int, str]":
    """speechser-format-audio in this process: (exit status, stderr)."""
    rc = format_main([str(a) for a in args])
    return rc, capsys.readouterr().err


def rates(wav_scp: Path) -> set:
    return {soundfile.info(p).samplerate for p in dd.read_kv(wav_scp).values()}


# ---------------------------------------------------------------- the corpus's own audio and data directory


def test_audio_dir_holding_the_source_audio_is_refused(make_data_dir, tmp_path: Path, capsys):
    d = make_data_dir(rate=22050)
    corpus_audio = tmp_path / "data_wav"  # where make_data_dir keeps the corpus's audio
    before = snapshot(corpus_audio)
    rc, err = fmt(capsys, d, tmp_path / "out", "--audio-dir", corpus_audio, "--rate", "16000")
    assert rc == 1, err
    assert f"--audio-dir {corpus_audio}" in err and f"{d}/wav.scp:1" in err and "source audio" in err
    assert "give an --audio-dir of its own" in err and f"{tmp_path / 'out'}/wav" in err
    assert snapshot(corpus_audio) == before
    assert {soundfile.info(str(p)).samplerate for p in corpus_audio.iterdir()} == {22050}
    assert not (tmp_path / "out").exists() and not leftovers(tmp_path)


@pytest.mark.parametrize("case", ["dst is src", "audio dir is src", "dst holds the source audio"])
def test_output_on_the_input_is_refused(make_data_dir, tmp_path: Path, capsys, case: str):
    d = make_data_dir()
    corpus_audio = tmp_path / "data_wav"
    dst, audio, what = {
        "dst is src": (d, tmp_path / "wav", "same directory"),
        "audio dir is src": (tmp_path / "out", d, f"--audio-dir {d}: it is or holds the source data directory"),
        "dst holds the source audio": (corpus_audio, tmp_path / "wav",
                                       f"output directory {corpus_audio}: it holds the source audio"),
    }[case]
    before, before_audio = snapshot(d), snapshot(corpus_audio)
    rc, err = fmt(capsys, d, dst, "--audio-dir", audio)
    assert rc == 1 and what in err, err
    assert snapshot(d) == before and snapshot(corpus_audio) == before_audio
    assert not leftovers(tmp_path)


def test_an_existing_data_directory_formatting_did_not_write_is_not_replaced(make_data_dir, tmp_path: Path,
                                                                              capsys):
    """Another data directory of the user's (no format.log) given as the output is refused, not emptied."""
    d = make_data_dir()
    other = make_data_dir(name="other")
    (other / "notes.txt").write_text("mine")
    before = snapshot(other)
    rc, err = fmt(capsys, d, other, "--audio-dir", tmp_path / "wav")
    assert rc == 1 and f"output directory {other}: exists, was not written by formatting" in err, err
    assert snapshot(other) == before
    rc, err = fmt(capsys, d, tmp_path / "out", "--audio-dir", tmp_path / "out/wav")
    assert rc == 0, err
    rc, err = fmt(capsys, d, tmp_path / "out", "--audio-dir", tmp_path / "out/wav")  # its own output: replaced
    assert rc == 0, err


# ---------------------------------------------------------------- an interrupted re-run


@pytest.mark.parametrize("audio_inside", [True, False], ids=["audio-in-dst", "audio-beside-dst"])
def test_interrupted_rerun_leaves_the_previous_output_untouched(make_data_dir, tmp_path: Path, capsys,
                                                                 monkeypatch, audio_inside: bool):
    d = make_data_dir(n_utt=4)
    out = tmp_path / "dump/raw/train"
    audio = out / "wav" if audio_inside else tmp_path / "dump/wav/train"
    assert fmt(capsys, d, out, "--audio-dir", audio, "--rate", "16000")[0] == 0
    before_out, before_audio = snapshot(out), snapshot(audio)
    real, calls = soundfile.write, []

    def interrupted(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C (or any failure) in the middle of the audio
        return real(*args, **kwargs)

    monkeypatch.setattr(soundfile, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        format_main([str(d), str(out), "--audio-dir", str(audio), "--rate", "8000"])
    assert snapshot(out) == before_out and snapshot(audio) == before_audio
    assert rates(out / "wav.scp") == {16000} and not leftovers(tmp_path)
    monkeypatch.setattr(soundfile, "write", real)
    assert fmt(capsys, d, out, "--audio-dir", audio, "--rate", "8000")[0] == 0
    assert rates(out / "wav.scp") == {8000} and dd.validate_data_dir(out) == 8
    assert {p.name for p in audio.iterdir()} == {Path(p).name for p in dd.read_kv(out / "wav.scp").values()}
    assert not leftovers(tmp_path)


KILL_ON_THIRD_WRITE = """
import os, signal, sys
import soundfile
real, n = soundfile.write, [0]
def write(*args, **kwargs):
    n[0] += 1
    if n[0] == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)
soundfile.write = write
from speechser.bin.format_audio import main
sys.exit(main())
"""


def test_killed_rerun_leaves_the_previous_output_consistent(make_data_dir, tmp_path: Path, capsys):
    d = make_data_dir(n_utt=4)
    out = tmp_path / "dump/raw/train"
    assert fmt(capsys, d, out, "--audio-dir", out / "wav", "--rate", "16000")[0] == 0
    before = snapshot(out)
    killed = subprocess.run([sys.executable, "-c", KILL_ON_THIRD_WRITE, str(d), str(out), "--audio-dir",
                             str(out / "wav"), "--rate", "8000"], capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert snapshot(out) == before and rates(out / "wav.scp") == {16000}
    assert dd.validate_data_dir(out) == 8
    # the next run removes what the killed one left and replaces the output as a whole
    assert fmt(capsys, d, out, "--audio-dir", out / "wav", "--rate", "8000")[0] == 0
    assert rates(out / "wav.scp") == {8000} and not leftovers(tmp_path)


# ---------------------------------------------------------------- a full or read-only disk


@pytest.mark.parametrize("failure", ["libsndfile", "enospc"])
def test_full_disk_is_an_error_naming_the_file_the_source_and_the_fix(make_data_dir, tmp_path: Path, capsys,
                                                                       monkeypatch, failure: str):
    d = make_data_dir()
    out = tmp_path / "out"
    assert fmt(capsys, d, out, "--audio-dir", out / "wav")[0] == 0
    before = snapshot(out)

    def full(path, *args, **kwargs):
        if failure == "libsndfile":
            raise soundfile.LibsndfileError(2, f"Error opening {path!r}: ")  # libsndfile's "System error."
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

    monkeypatch.setattr(soundfile, "write", full)
    rc, err = fmt(capsys, d, out, "--audio-dir", out / "wav", "--rate", "8000")
    assert rc == 1, err
    assert f"cannot write the formatted audio of utterance 'spkA-u0' ({d}/wav.scp:1) to {out}/wav/spkA-u0.wav" in err
    assert "free space" in err and "--audio-dir" in err and "Traceback" not in err
    assert ".new." not in err  # the user's paths, not the temporary folder's
    assert snapshot(out) == before and not leftovers(tmp_path)


def test_read_only_output_is_an_error_naming_the_place(make_data_dir, tmp_path: Path, capsys):
    d = make_data_dir()
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        (ro / "probe").mkdir()
    except PermissionError:
        pass
    else:
        ro.chmod(0o755)
        pytest.skip("running as root: chmod does not stop writes (the ENOSPC variants above cover this)")
    try:
        rc, err = fmt(capsys, d, ro / "out", "--audio-dir", ro / "out/wav")
    finally:
        ro.chmod(0o755)
    assert rc == 1 and f"{ro}/out" in err and "writable" in err and ".new." not in err, err


def test_data_file_write_failure_names_the_output_dir_not_a_temporary_file(make_data_dir, tmp_path: Path,
                                                                            capsys, monkeypatch):
    import speechser.io.datadir.edit as table_writer  # formatting writes its tables through datadir's writer

    d = make_data_dir()
    out = tmp_path / "out"
    assert fmt(capsys, d, out, "--audio-dir", out / "wav")[0] == 0
    before = snapshot(out)

    def full(path, mapping):
        tmp = Path(path).with_name(Path(path).name + ".tmp")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))

    monkeypatch.setattr(table_writer, "write_kv", full)
    rc, err = fmt(capsys, d, out, "--audio-dir", out / "wav", "--rate", "8000")
    assert rc == 1 and f"cannot write the output data directory {out}" in err and "free space" in err, err
    assert ".tmp" not in err and ".new." not in err
    assert snapshot(out) == before and not leftovers(tmp_path)


# ---------------------------------------------------------------- undecodable data files


@pytest.mark.parametrize("name", ["text", "utt2emo"])
def test_latin1_data_file_is_an_error_naming_file_line_and_byte(make_data_dir, tmp_path: Path, capsys,
                                                                  name: str):
    d = make_data_dir()
    lines = (d / name).read_bytes().split(b"\n")
    lines[1] += " caf\xe9".encode("latin-1")  # line 2 in Latin-1
    (d / name).write_bytes(b"\n".join(lines))
    before = snapshot(d)
    expected = f"{d}/{name}:2: not valid UTF-8 (byte 0xE9"
    rc, err = fmt(capsys, d, tmp_path / "out", "--audio-dir", tmp_path / "out/wav")
    assert rc == 1 and expected in err and "re-encode the file as UTF-8" in err, err
    assert not (tmp_path / "out").exists()
    assert fix_main([str(d)]) == 1
    err = capsys.readouterr().err
    assert expected in err, err
    assert snapshot(d) == before  # nothing rewritten, no backup made
    assert validate_main(["--no-feats", str(d)]) == 1
    assert expected in capsys.readouterr().err


def test_byte_order_mark_is_named_by_the_validator_and_refused_by_fix(make_data_dir, tmp_path: Path, capsys):
    d = make_data_dir()
    (d / "utt2spk").write_bytes(b"\xef\xbb\xbf" + (d / "utt2spk").read_bytes())
    before = snapshot(d)
    assert validate_main(["--no-feats", str(d)]) == 1
    err = capsys.readouterr().err
    assert f"{d}/utt2spk:1: the file starts with a UTF-8 byte-order mark (BOM)" in err, err
    assert "sed -i '1s/^\\xEF\\xBB\\xBF//'" in err
    assert fix_main([str(d)]) == 1
    err = capsys.readouterr().err
    assert f"{d}/utt2spk:1: the file starts with a UTF-8 byte-order mark (BOM)" in err, err
    assert snapshot(d) == before  # not one utterance dropped
    rc, err = fmt(capsys, d, tmp_path / "out", "--audio-dir", tmp_path / "out/wav")
    assert rc == 1 and "byte-order mark" in err
    # the advice works
    subprocess.run(["sed", "-i", "1s/^\\xEF\\xBB\\xBF//", str(d / "utt2spk")], check=True)
    assert validate_main(["--no-feats", str(d)]) == 0
    assert "OK (6 utterances)" in capsys.readouterr().out


# ---------------------------------------------------------------- keys too long for a file name


def test_keys_too_long_for_a_file_name_format_to_the_right_audio(tmp_path: Path, capsys):
    long_a, long_b = "spk-" + "x" * 5000 + "a", "spk-" + "x" * 5000 + "b"  # alike but for the end
    keys = {long_a: 1.0, long_b: 1.5, "spk-" + "k" * 248: 2.0, "spk-" + "é" * 130: 2.5, "spk-short": 0.75}
    (tmp_path / "audio").mkdir()
    wav = {}
    for i, (key, seconds) in enumerate(sorted(keys.items())):
        wav[key] = str(tmp_path / f"audio/{i}.wav")
        write_tone(Path(wav[key]), seconds, 22050)
    d = dd.write_data_dir(tmp_path / "data", {"wav.scp": wav, "utt2spk": {k: "spk" for k in keys}})
    assert dd.validate_data_dir(d) == 5
    out = tmp_path / "out"
    rc, err = fmt(capsys, d, out, "--audio-dir", out / "wav")
    assert rc == 0, err
    formatted = dd.read_kv(out / "wav.scp")
    assert set(formatted) == set(keys) and len(set(formatted.values())) == 5
    for key, path in formatted.items():
        assert len(Path(path).name.encode()) <= 255 and Path(path).parent == (out / "wav").resolve()
        info = soundfile.info(path)
        assert info.samplerate == 16000 and info.frames == pytest.approx(keys[key] * 16000, abs=2), key
    assert Path(formatted["spk-short"]).name == "spk-short.wav"  # short keys keep their names
    assert dd.validate_data_dir(out) == 5
    # a prefix on top (speed perturbation) stays within the limit too
    from speechser.io.format import speed_perturb_data_dir

    assert speed_perturb_data_dir(out, tmp_path / "sp", tmp_path / "sp/wav", 0.9) == 5
    for key, path in dd.read_kv(tmp_path / "sp/wav.scp").items():
        assert len(Path(path).name.encode()) <= 255
        assert soundfile.info(path).frames == pytest.approx(keys[key[len("sp0.9-"):]] * 16000 / 0.9, abs=2)


def test_safe_key_filename_is_bounded_distinct_and_stable():
    a = dd.safe_key_filename("u" * 300, "x/utt2spk:1", ".wav")
    b = dd.safe_key_filename("u" * 301, "x/utt2spk:2", ".wav")
    assert a != b and a.endswith(".wav") and len(a.encode()) <= 255 and len(b.encode()) <= 255
    assert a == dd.safe_key_filename("u" * 300, "elsewhere", ".wav")
    assert dd.safe_key_filename("é" * 200, "x/utt2spk:3", ".wav").encode().decode("utf-8")
    assert dd.safe_key_filename("spkA-u0", "x/utt2spk:1", ".wav") == "spkA-u0.wav"

