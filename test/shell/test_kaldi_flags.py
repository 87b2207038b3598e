"""The drop-in tools of utils/ take the flags of their Kaldi namesakes, with Kaldi's defaults
(issue 9). One test per flag; each runs the tool as a recipe does (bash, a subprocess) on a
small data directory and checks the behaviour Kaldi documents for that flag."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np
import soundfile

from speechser.io import datadir as dd

ROOT = Path(__file__).resolve().parents[2]
UTILS = ROOT / "utils"


def run(*args, check=True):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    proc = subprocess.run([str(a) for a in args], env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def validate(*args, check=True):
    return run(UTILS / "validate_data_dir.sh", *args, check=check)


def keys(path: Path) -> List[str]:
    return [ln.split()[0] for ln in path.read_text().splitlines()]


def table(path: Path) -> Dict[str, str]:
    return dd.read_kv(path)


def fake_feats(d: Path) -> None:
    """A feats.scp over the directory's utterances (validation reads keys, not matrices)."""
    dd.write_kv(d / "feats.scp", {u: f"{d}/raw.ark:{10 * i}" for i, u in enumerate(keys(d / "utt2spk"))})


def assert_spk2utt_consistent(d: Path) -> None:
    assert dd.read_spk2utt(d / "spk2utt") == dd.utt2spk_to_spk2utt(table(d / "utt2spk"))


# ---------------------------------------------------------------- validate_data_dir.sh


def test_validate_requires_feats_unless_no_feats(make_data_dir):
    d = make_data_dir()  # wav.scp, text, utt2spk, spk2utt, utt2emo; no features yet
    bad = validate(d, check=False)
    assert bad.returncode == 1
    assert f"{d}/feats.scp: no such file" in bad.stderr and "--no-feats" in bad.stderr
    assert "OK (6 utterances)" in validate("--no-feats", d).stdout
    fake_feats(d)
    assert "OK (6 utterances)" in validate(d).stdout
    # --no-feats: not required, but checked when present
    lines = (d / "feats.scp").read_text().splitlines()
    (d / "feats.scp").write_text("\n".join(lines[:-1]) + "\n")
    bad = validate("--no-feats", d, check=False)
    assert bad.returncode == 1 and "feats.scp: key set differs from utt2spk" in bad.stderr


def test_validate_requires_text_unless_no_text(make_data_dir):
    d = make_data_dir()
    (d / "text").unlink()
    bad = validate("--no-feats", d, check=False)
    assert bad.returncode == 1 and f"{d}/text: no such file" in bad.stderr and "--no-text" in bad.stderr
    assert "OK (6 utterances)" in validate("--no-feats", "--no-text", d).stdout
    # --no-text: checked when present
    (d / "text").write_text("spkA-u0 hello\n")
    bad = validate("--no-feats", "--no-text", d, check=False)
    assert bad.returncode == 1 and "text: key set differs from utt2spk" in bad.stderr
    # the toolkit's former --require-text is still accepted (text is required by default anyway)
    d2 = make_data_dir(name="d2")
    assert "OK (6 utterances)" in validate("--require-text", "--no-feats", d2).stdout


def test_validate_requires_wav_unless_no_wav(make_data_dir):
    d = make_data_dir()
    fake_feats(d)
    wav = (d / "wav.scp").read_text()
    (d / "wav.scp").unlink()
    bad = validate(d, check=False)  # Kaldi: wav.scp is required even when feats.scp is there
    assert bad.returncode == 1 and f"{d}/wav.scp: no such file" in bad.stderr and "--no-wav" in bad.stderr
    assert "OK (6 utterances)" in validate("--no-wav", d).stdout
    # --no-wav: checked when present
    (d / "wav.scp").write_text("".join(wav.splitlines(keepends=True)[1:]))
    bad = validate("--no-wav", d, check=False)
    assert bad.returncode == 1 and "wav.scp: key set differs from utt2spk at 'spkA-u0'" in bad.stderr


def test_validate_rejects_non_printing_text_unless_non_print(make_data_dir):
    d = make_data_dir()
    text = table(d / "text")
    text["spkA-u1"] = "xin chào\tthế giới"  # non-ASCII letters and a tab are fine
    dd.write_kv(d / "text", text)
    assert "OK (6 utterances)" in validate("--no-feats", d).stdout
    text["spkA-u2"] = "bell\x07 here"
    dd.write_kv(d / "text", text)
    bad = validate("--no-feats", d, check=False)
    assert bad.returncode == 1
    assert f"{d}/text:3: non-printing character U+0007 at column 13" in bad.stderr and "--non-print" in bad.stderr
    assert "OK (6 utterances)" in validate("--no-feats", "--non-print", d).stdout
    # text that is not UTF-8 is an error naming the line, --non-print or not
    (d / "text").write_bytes((d / "text").read_bytes().replace("chào".encode(), b"ch\xe0o"))
    bad = validate("--no-feats", "--non-print", d, check=False)
    assert bad.returncode == 1 and f"{d}/text:2: not valid UTF-8" in bad.stderr


def test_validate_requires_speaker_sorted_utt2spk_unless_no_spk_sort(make_data_dir):
    d = make_data_dir()  # utterance ids spkA-u0 ... start with their speaker: sorted both ways
    assert "OK (6 utterances)" in validate("--no-feats", d).stdout
    # speaker ids that are not prefixes of the utterance ids: spkA's utterances now belong to "s2",
    # spkB's to "s1", so utt2spk sorted by utterance is not sorted by speaker
    utt2spk = {u: {"spkA": "s2", "spkB": "s1"}[s] for u, s in table(d / "utt2spk").items()}
    dd.write_kv(d / "utt2spk", utt2spk)
    dd.write_spk2utt(d / "spk2utt", dd.utt2spk_to_spk2utt(utt2spk))
    bad = validate("--no-feats", d, check=False)
    assert bad.returncode == 1
    assert f"{d}/utt2spk:4: speaker 's1' of utterance 'spkB-u0' sorts before speaker 's2' on line 3" in bad.stderr
    assert "--no-spk-sort" in bad.stderr
    assert "OK (6 utterances)" in validate("--no-feats", "--no-spk-sort", d).stdout


# ---------------------------------------------------------------- fix_data_dir.sh


def test_fix_utt_extra_files(make_data_dir):
    d = make_data_dir()
    emo = table(d / "utt2emo")
    del emo["spkB-u1"]  # fix_data_dir drops spkB-u1 everywhere
    dd.write_kv(d / "utt2emo", emo)
    # an extra per-utterance file, unsorted, with a stray utterance
    (d / "utt2lang").write_text("spkB-u2 de\nspkA-u0 de\nspkB-u1 de\nspkZ-u9 en\nspkA-u1 de\nspkA-u2 de\nspkB-u0 de\n")
    run(UTILS / "fix_data_dir.sh", "--utt-extra-files", "utt2lang", d)
    kept = ["spkA-u0", "spkA-u1", "spkA-u2", "spkB-u0", "spkB-u2"]
    assert keys(d / "utt2spk") == kept
    assert keys(d / "utt2lang") == kept  # filtered to the kept utterances and sorted
    assert (d / ".backup/utt2lang").read_text().startswith("spkB-u2 de\n")
    assert "OK (5 utterances)" in validate("--no-feats", d).stdout
    # without the option an utt2* file is filtered all the same (issue 10: as Kaldi does utt2lang;
    # nothing per-utterance is left unfiltered), while a file of another name is left alone
    (d / "utt2lang").write_text("spkZ-u9 en\nspkA-u0 de\n")
    (d / "lang_notes").write_text("spkZ-u9 en\n")
    run(UTILS / "fix_data_dir.sh", d)
    assert (d / "utt2lang").read_text() == "spkA-u0 de\n"
    assert (d / "lang_notes").read_text() == "spkZ-u9 en\n"


def test_fix_spk_extra_files(make_data_dir):
    d = make_data_dir()
    (d / "spk2age").write_text("spkZ 40\nspkB 30\nspkA 20\n")
    (d / "spk2other").write_text("spkZ 1\n")
    run(UTILS / "fix_data_dir.sh", "--spk-extra-files", "spk2age missing_file", d)
    assert (d / "spk2age").read_text() == "spkA 20\nspkB 30\n"
    assert (d / "spk2other").read_text() == "spkZ 1\n"


# ---------------------------------------------------------------- subset_data_dir.sh


def test_subset_utt_list(make_data_dir, tmp_path: Path):
    d = make_data_dir()
    (tmp_path / "utts").write_text("spkB-u1 anything\nspkA-u0\n")
    run(UTILS / "subset_data_dir.sh", "--utt-list", tmp_path / "utts", d, tmp_path / "sub")
    assert keys(tmp_path / "sub/utt2spk") == ["spkA-u0", "spkB-u1"]
    assert keys(tmp_path / "sub/text") == keys(tmp_path / "sub/wav.scp") == ["spkA-u0", "spkB-u1"]
    assert_spk2utt_consistent(tmp_path / "sub")
    assert "OK (2 utterances)" in validate("--no-feats", tmp_path / "sub").stdout


def test_subset_spk_list(make_data_dir, tmp_path: Path):
    d = make_data_dir(n_spk=3)
    (tmp_path / "spks").write_text("spkC\nspkA\n")
    run(UTILS / "subset_data_dir.sh", "--spk-list", tmp_path / "spks", d, tmp_path / "sub")
    assert sorted(set(table(tmp_path / "sub/utt2spk").values())) == ["spkA", "spkC"]
    assert len(keys(tmp_path / "sub/utt2spk")) == 6
    assert keys(tmp_path / "sub/spk2utt") == ["spkA", "spkC"]
    assert_spk2utt_consistent(tmp_path / "sub")


def test_subset_first(make_data_dir, tmp_path: Path):
    d = make_data_dir()
    # Kaldi's form: the switch, then <srcdir> <num> <destdir>
    run(UTILS / "subset_data_dir.sh", "--first", d, "4", tmp_path / "k")
    assert keys(tmp_path / "k/utt2spk") == ["spkA-u0", "spkA-u1", "spkA-u2", "spkB-u0"]
    assert (tmp_path / "k/spk2utt").read_text() == "spkA spkA-u0 spkA-u1 spkA-u2\nspkB spkB-u0\n"
    assert "OK (4 utterances)" in validate("--no-feats", tmp_path / "k").stdout
    # the toolkit's form, --first <num> <srcdir> <destdir>, selects the same
    run(UTILS / "subset_data_dir.sh", "--first", "4", d, tmp_path / "t")
    for name in ("utt2spk", "spk2utt", "text", "wav.scp", "utt2emo"):
        assert (tmp_path / "t" / name).read_text() == (tmp_path / "k" / name).read_text()
    # as in Kaldi, more utterances than there are is an error
    bad = run(UTILS / "subset_data_dir.sh", "--first", d, "7", tmp_path / "x", check=False)
    assert bad.returncode == 1 and "cannot take 7 utterances from 6" in bad.stderr


def test_subset_last(make_data_dir, tmp_path: Path):
    d = make_data_dir()
    run(UTILS / "subset_data_dir.sh", "--last", d, "2", tmp_path / "sub")
    assert keys(tmp_path / "sub/utt2spk") == ["spkB-u1", "spkB-u2"]
    assert (tmp_path / "sub/spk2utt").read_text() == "spkB spkB-u1 spkB-u2\n"


def test_subset_shortest(make_data_dir, tmp_path: Path):
    d = make_data_dir()
    utts = keys(d / "utt2spk")
    seconds = dict(zip(utts, [1.5, 0.4, 0.9, 0.2, 1.1, 0.6]))
    # without utt2dur (or frames, or segments, or features) the audio is measured
    wav = table(d / "wav.scp")
    for u, s in seconds.items():
        soundfile.write(wav[u], np.zeros(int(16000 * s), dtype=np.float32), 16000, subtype="PCM_16")
    out = run(UTILS / "subset_data_dir.sh", "--shortest", d, "3", tmp_path / "audio")
    assert "wav.scp" in out.stdout
    assert keys(tmp_path / "audio/utt2spk") == ["spkA-u1", "spkB-u0", "spkB-u2"]
    assert_spk2utt_consistent(tmp_path / "audio")
    # utt2dur, when there, is what decides (here it says the opposite of the audio)
    dd.write_kv(d / "utt2dur", {u: f"{10 - s:.1f}" for u, s in seconds.items()})
    out = run(UTILS / "subset_data_dir.sh", "--shortest", "2", d, tmp_path / "dur")
    assert "utt2dur" in out.stdout
    assert keys(tmp_path / "dur/utt2spk") == ["spkA-u0", "spkB-u1"]


def test_subset_num_without_switch_is_evenly_spaced(make_data_dir, tmp_path: Path):
    d = make_data_dir()
    run(UTILS / "subset_data_dir.sh", d, "3", tmp_path / "sub")
    # deterministic, spread over the sorted list as Kaldi's subset_scp.pl does: every second one
    assert keys(tmp_path / "sub/utt2spk") == ["spkA-u0", "spkA-u2", "spkB-u1"]
    assert_spk2utt_consistent(tmp_path / "sub")
    run(UTILS / "subset_data_dir.sh", d, "3", tmp_path / "again")
    assert (tmp_path / "again/utt2spk").read_text() == (tmp_path / "sub/utt2spk").read_text()


def test_subset_per_spk(make_data_dir, tmp_path: Path):
    d = make_data_dir(n_spk=2, n_utt=4)
    run(UTILS / "subset_data_dir.sh", "--per-spk", d, "2", tmp_path / "two")
    assert keys(tmp_path / "two/utt2spk") == ["spkA-u0", "spkA-u2", "spkB-u0", "spkB-u2"]
    assert_spk2utt_consistent(tmp_path / "two")
    # a speaker with fewer utterances than asked for keeps them all
    run(UTILS / "subset_data_dir.sh", "--per-spk", d, "9", tmp_path / "all")
    assert len(keys(tmp_path / "all/utt2spk")) == 8


# ---------------------------------------------------------------- combine_data.sh


def test_combine_extra_files(make_data_dir, tmp_path: Path):
    a, b = make_data_dir(name="a"), make_data_dir(name="b")
    run(UTILS / "copy_data_dir.sh", "--utt-prefix", "b-", "--spk-prefix", "b-", b, tmp_path / "b2")
    for d in (a, tmp_path / "b2"):
        dd.write_kv(d / "utt2lang", {u: "de" for u in keys(d / "utt2spk")})
    run(UTILS / "combine_data.sh", "--extra-files", "utt2lang", tmp_path / "c", a, tmp_path / "b2")
    assert len(keys(tmp_path / "c/utt2lang")) == 12
    assert keys(tmp_path / "c/utt2lang") == keys(tmp_path / "c/utt2spk")
    # issue 10: an utt2* file is combined without being named; other files only when named
    for d in (a, tmp_path / "b2"):
        dd.write_kv(d / "spk2age", {s: "30" for s in keys(d / "spk2utt")})
    run(UTILS / "combine_data.sh", tmp_path / "plain", a, tmp_path / "b2")
    assert keys(tmp_path / "plain/utt2lang") == keys(tmp_path / "plain/utt2spk")
    assert not (tmp_path / "plain/spk2age").exists()
    run(UTILS / "combine_data.sh", "--extra-files", "spk2age", tmp_path / "named", a, tmp_path / "b2")
    assert len(keys(tmp_path / "named/spk2age")) == 4


def test_combine_runs_fix_unless_skip_fix(make_data_dir, tmp_path: Path):
    a, b = make_data_dir(name="a"), make_data_dir(name="b")
    run(UTILS / "copy_data_dir.sh", "--utt-prefix", "b-", "--spk-prefix", "b-", b, tmp_path / "b2")
    emo = table(tmp_path / "b2/utt2emo")
    del emo["b-spkA-u1"]  # a source that is itself inconsistent
    dd.write_kv(tmp_path / "b2/utt2emo", emo)
    run(UTILS / "combine_data.sh", tmp_path / "fixed", a, tmp_path / "b2")
    assert "b-spkA-u1" not in keys(tmp_path / "fixed/utt2spk")
    assert (tmp_path / "fixed/.backup/utt2spk").is_file()
    assert "OK (11 utterances)" in validate("--no-feats", tmp_path / "fixed").stdout
    run(UTILS / "combine_data.sh", "--skip-fix", tmp_path / "raw", a, tmp_path / "b2")
    assert "b-spkA-u1" in keys(tmp_path / "raw/utt2spk") and not (tmp_path / "raw/.backup").exists()
    bad = validate("--no-feats", tmp_path / "raw", check=False)
    assert bad.returncode == 1 and "utt2emo: key set differs from utt2spk" in bad.stderr


# ---------------------------------------------------------------- copy_data_dir.sh


def test_copy_utt_prefix_renames_utterances_only(make_data_dir, tmp_path: Path):
    d = make_data_dir()
    run(UTILS / "copy_data_dir.sh", "--utt-prefix", "sp0.9-", d, tmp_path / "c")
    c = tmp_path / "c"
    assert keys(c / "utt2spk")[0] == "sp0.9-spkA-u0"
    for name in ("utt2spk", "text", "wav.scp", "utt2emo"):
        assert keys(c / name) == [f"sp0.9-{u}" for u in keys(d / name)]
    assert table(c / "utt2spk")["sp0.9-spkB-u2"] == "spkB"  # speakers keep their ids
    assert keys(c / "spk2utt") == ["spkA", "spkB"]
    assert_spk2utt_consistent(c)


def test_copy_spk_prefix_renames_speakers_only(make_data_dir, tmp_path: Path):
    d = make_data_dir()
    (d / "spk2gender").write_text("spkA f\nspkB m\n")
    run(UTILS / "copy_data_dir.sh", "--spk-prefix=x-", d, tmp_path / "c")
    c = tmp_path / "c"
    assert keys(c / "utt2spk") == keys(d / "utt2spk")  # utterance ids unchanged
    assert set(table(c / "utt2spk").values()) == {"x-spkA", "x-spkB"}
    assert (c / "spk2gender").read_text() == "x-spkA f\nx-spkB m\n"
    assert_spk2utt_consistent(c)


def test_copy_suffixes(make_data_dir, tmp_path: Path):
    d = make_data_dir()
    run(UTILS / "copy_data_dir.sh", "--utt-suffix", "-rev", "--spk-suffix", "-rev", d, tmp_path / "c")
    c = tmp_path / "c"
    assert table(c / "utt2spk")["spkA-u0-rev"] == "spkA-rev"
    assert keys(c / "text") == [f"{u}-rev" for u in keys(d / "text")]
    assert "OK (6 utterances)" in validate("--no-feats", c).stdout


def test_copy_keeps_recording_ids_with_segments(tmp_path: Path):
    d = tmp_path / "seg"
    d.mkdir()
    soundfile.write(str(tmp_path / "rec.wav"), np.zeros(32000, dtype=np.float32), 16000, subtype="PCM_16")
    (d / "wav.scp").write_text(f"rec1 {tmp_path}/rec.wav\n")
    (d / "segments").write_text("spkA-u0 rec1 0.0 0.5\nspkA-u1 rec1 0.5 1.5\n")
    (d / "utt2spk").write_text("spkA-u0 spkA\nspkA-u1 spkA\n")
    (d / "spk2utt").write_text("spkA spkA-u0 spkA-u1\n")
    (d / "text").write_text("spkA-u0 one\nspkA-u1 two\n")
    run(UTILS / "copy_data_dir.sh", "--utt-prefix", "p-", "--spk-prefix", "p-", d, tmp_path / "c")
    assert (tmp_path / "c/wav.scp").read_text() == (d / "wav.scp").read_text()
    assert (tmp_path / "c/segments").read_text() == "p-spkA-u0 rec1 0.0 0.5\np-spkA-u1 rec1 0.5 1.5\n"


def test_copy_validates_the_copy_with_validate_opts(make_data_dir, tmp_path: Path):
    d = make_data_dir()
    (d / "text").unlink()  # no text, no feats: copy_data_dir adds --no-text --no-feats itself
    out = run(UTILS / "copy_data_dir.sh", d, tmp_path / "ok")
    assert "copied 6 utterances" in out.stdout
    fake_feats(d)
    (d / "wav.scp").unlink()  # features only: the copy fails validation, naming wav.scp ...
    bad = run(UTILS / "copy_data_dir.sh", d, tmp_path / "bad", check=False)
    assert bad.returncode == 1 and f"{tmp_path}/bad/wav.scp: no such file" in bad.stderr
    # ... unless the validation options say so (Kaldi's --validate-opts)
    run(UTILS / "copy_data_dir.sh", "--validate-opts", "--no-wav", d, tmp_path / "feats_only")
    assert keys(tmp_path / "feats_only/feats.scp") == keys(d / "utt2spk")
    bad = run(UTILS / "copy_data_dir.sh", "--validate-opts", "--bogus", d, tmp_path / "x", check=False)
    assert bad.returncode == 1 and "--validate-opts '--bogus'" in bad.stderr
