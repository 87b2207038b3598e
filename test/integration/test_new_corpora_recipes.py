"""The recipes of issue 16 on fixtures in their corpora's release layouts (test/integration/
new_corpora_fixtures.py, from Emo-DB's real audio): data preparation checked field by field, a wrong
layout named with what was expected where, and each recipe run end to end with its default system or a
tiny model."""

from __future__ import annotations

import csv
import functools
import os
import re
import shutil
import sys
import unicodedata
from pathlib import Path

import pytest
import soundfile

from new_corpora_fixtures import (CREMA_ACTORS, CREMA_EMPTY, RAVDESS_ACTORS, VIVOS_PROMPTS, build_crema_d,
                                  build_emov_db, build_ravdess, build_vivos)
from recipe_helpers import ROOT, copy_recipe, kv, sh


def recipe_env(**corpora: str) -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
                **corpora)


def prepare(script: Path, root: Path, out: Path, *opts: str, check: bool = True):
    """Run a recipe's ``local/prepare_<corpus>.py`` on the release ``root`` into ``out``."""
    return sh([sys.executable, script, *opts, root, out], cwd=out.parent, env=recipe_env(), check=check)


def build_release(tmp_path_factory, name: str, folder: str, build, source: Path):
    """A fixture release ``<tmp>/<name>/<folder>`` made by ``build(source, root)``: (root, what build returns)."""
    root = tmp_path_factory.mktemp(name) / folder
    return root, build(source, root)


def assert_refused(prepare_fn, bad: Path, tmp_path: Path, words: str, *opts: str):
    """``prepare_fn`` on the broken release ``bad`` exits 1 saying ``words``; returns the process."""
    (tmp_path / "out").mkdir()
    proc = prepare_fn(bad, tmp_path / "out/all", *opts, check=False)
    assert proc.returncode == 1 and words in proc.stderr, proc.stderr
    return proc


def run_recipe(recipe: Path, tmp_path: Path, env: dict, *args: str) -> Path:
    """``./run.sh args`` in a copy of ``recipe``, which must finish; returns the copy."""
    rdir = copy_recipe(recipe, tmp_path)
    out = sh(["./run.sh", *args], cwd=rdir, env=env)
    assert re.search(r"Successfully finished\. \[elapsed=\d+s\]", out.stdout)
    return rdir


def assert_folds_done(exp: Path, folds: int, labels=None) -> None:
    """Each of ``folds`` folds decoded (into ``labels`` where given) and packed."""
    for k in range(1, folds + 1):
        assert (exp / f"fold{k}/decode_test/hyp").is_file() and (exp / f"packed/fold{k}.tar").is_file()
        if labels is not None:
            assert set(kv(exp / f"fold{k}/decode_test/hyp").values()) <= labels


def assert_results(rdir: Path, recipe: str, pattern: str) -> None:
    """RESULTS.md is ``recipe``'s and holds ``pattern`` (a regular expression, per line)."""
    results = (rdir / "exp/RESULTS.md").read_text()
    assert results.startswith(f"# RESULTS: {recipe}") and re.search(pattern, results, re.M)


# --- RAVDESS ------------------------------------------------------------------------------------------

RAVDESS = ROOT / "egs/ravdess/ser1"


@pytest.fixture(scope="module")
def ravdess(tmp_path_factory, emodb) -> Path:
    return build_release(tmp_path_factory, "ravdess", "Audio_Speech_Actors_01-24", build_ravdess, emodb)[0]


prepare_ravdess = functools.partial(prepare, RAVDESS / "local/prepare_ravdess.py")


def test_ravdess_fixture_has_the_release_layout(ravdess):
    files = sorted(ravdess.glob("Actor_*/*.wav"))
    assert len(files) == 64 and sorted({p.parent.name for p in files}) == [f"Actor_{a}" for a in RAVDESS_ACTORS]
    info = soundfile.info(str(files[0]))
    assert info.samplerate == 48000 and info.subtype == "PCM_16" and info.channels == 1
    assert all(re.fullmatch(r"03-01-0[1-8]-0[12]-0[12]-0[12]-(\d\d)", p.stem) for p in files)


def test_ravdess_prepare_reads_the_seven_fields(ravdess, tmp_path):
    prepare_ravdess(ravdess, tmp_path / "all")
    d = tmp_path / "all"
    emo, spk = kv(d / "utt2emo"), kv(d / "utt2spk")
    assert len(emo) == 64 and (d / "emotions.txt").read_text().split() == ["neu", "cal", "hap", "sad", "ang", "fea",
                                                                         "dis", "sur"]
    u = "actor06_03-01-05-02-02-01-06"  # angry, strong, "dogs ...", actor 6 (female)
    assert emo[u] == "ang" and spk[u] == "actor06" and kv(d / "utt2gender")[u] == "f"
    assert kv(d / "utt2intensity")[u] == "strong" and kv(d / "text")[u] == "dogs are sitting by the door"
    assert kv(d / "utt2intensity")["actor01_03-01-01-01-02-01-01"] == "normal"  # neutral: normal only
    # actors in groups of 4: 01 -> grp1, 06 -> grp2, 09 -> grp3, 14 -> grp4 (the losess protocol's folds)
    assert {spk[u]: g for u, g in kv(d / "utt2session").items()} == {"actor01": "grp1", "actor06": "grp2",
                                                                    "actor09": "grp3", "actor14": "grp4"}
    assert kv(d / "utt2gender")["actor09_03-01-04-01-01-01-09"] == "m"
    assert Path(kv(d / "wav.scp")[u]).resolve() == (ravdess / "Actor_06" / "03-01-05-02-02-01-06.wav").resolve()
    # the 7-class variant drops calm
    prepare_ravdess(ravdess, tmp_path / "all7", "--classes", "7")
    assert len(kv(tmp_path / "all7/utt2emo")) == 56 and "cal" not in (tmp_path / "all7/emotions.txt").read_text()


@pytest.mark.parametrize("breakage,words", [
    ("song", "vocal channel 02 is not 01 (speech; the song archive is not supported)"),
    ("actor", "actor 09 is not the folder's Actor_01"),
    ("name", "expected a name MM-VV-EE-II-SS-RR-AA.wav"),
    ("strong_neutral", "intensity 02 is not 01 or 02 (neutral: 01 only)"),
    ("no_actors", "no Actor_01 .. Actor_24 folders"),
])
def test_ravdess_wrong_layout_names_what_was_expected_where(ravdess, tmp_path, breakage, words):
    bad = tmp_path / "bad"
    if breakage != "no_actors":
        (bad / "Actor_01").mkdir(parents=True)
        name = {"song": "03-02-05-01-01-01-01", "actor": "03-01-05-01-01-01-09", "name": "03-01-05-01-01-01",
                "strong_neutral": "03-01-01-02-01-01-01"}[breakage]
        (bad / "Actor_01" / f"{name}.wav").symlink_to(next(ravdess.glob("Actor_01/*.wav")))
    else:
        (bad / "audio").mkdir(parents=True)
    proc = assert_refused(prepare_ravdess, bad, tmp_path, words)
    if breakage != "no_actors":
        assert str(bad / "Actor_01") in proc.stderr  # the file is named


def test_ravdess_recipe_runs_end_to_end_with_its_default_system(ravdess, tmp_path):
    """TRAINS: run.sh as a user runs it (ComParE functionals + logistic regression, leave one actor out),
    stages 1-8: 4 folds scored, reported and packed."""
    rdir = run_recipe(RAVDESS, tmp_path, recipe_env(SPEECHSER_RAVDESS=str(ravdess)), "--nj", "2", "--train_jobs", "2")
    assert len(kv(rdir / "data/all/utt2emo")) == 64
    exp = rdir / "exp/train_compare_logreg/loso"
    assert_folds_done(exp, 4, labels={"neu", "cal", "hap", "sad", "ang", "fea", "dis", "sur"})
    assert_results(rdir, "ravdess/ser1", r"^\| fold4 \| 16 \|")
    assert (exp / "scores/report.html").is_file()


# --- CREMA-D ------------------------------------------------------------------------------------------

CREMA = ROOT / "egs/crema_d/ser1"


@pytest.fixture(scope="module")
def crema(tmp_path_factory, emodb) -> Path:
    return build_release(tmp_path_factory, "crema_d", "CREMA-D", build_crema_d, emodb)[0]


prepare_crema = functools.partial(prepare, CREMA / "local/prepare_crema_d.py")


def test_crema_prepare_reads_names_demographics_and_the_voice_votes(crema, tmp_path):
    prepare_crema(crema, tmp_path / "all")
    d = tmp_path / "all"
    emo = kv(d / "utt2emo")
    assert len(emo) == 49 and (d / "emotions.txt").read_text().split() == ["ang", "dis", "fea", "hap", "neu", "sad"]
    stems = sorted(p.stem for p in (crema / "AudioWAV").glob("*.wav"))
    u = next(s for s in stems if s.startswith("1002_") and "_FEA_" in s)
    assert emo[u] == "fea" and kv(d / "utt2spk")[u] == "1002" and kv(d / "utt2gender")[u] == "f"
    assert kv(d / "utt2age")[u] == "21" and kv(d / "utt2intensity")[u] in ("high", "unspecified")
    assert kv(d / "utt2intensity")[u] == {"HI": "high", "XX": "unspecified"}[u[-2:]]
    assert kv(d / "text")[next(s for s in stems if "_DFA_" in s)] == "don't forget a jacket"
    # soft labels: the voice block's counts (the fixture's face and audio-visual raters all said neutral)
    with open(crema / "processedResults/tabulatedVotes.csv", newline="") as f:
        row = next(r for r in csv.DictReader(f) if r["fileName"] == u and r[""].startswith("1"))
    want = {lab: row[c] for lab, c in zip(["ang", "dis", "fea", "hap", "neu", "sad"], "ADFHNS") if row[c] != "0"}
    assert want["fea"] == "5" and max(want, key=lambda lab: int(want[lab])) == "fea"  # as the fixture wrote it
    assert dict(p.split(":") for p in kv(d / "utt2emo_dist")[u].split()) == want
    # 4 actors: as many groups (10 asked for), in ActorID order
    assert sorted(set(kv(d / "utt2session").values())) == ["grp01", "grp02", "grp03", "grp04"]
    assert len(set(kv(d / "utt2spk").values())) == len(CREMA_ACTORS)
    # the face raters' votes on request, none at all with --votes none
    prepare_crema(crema, tmp_path / "face", "--votes", "face")
    assert set(kv(tmp_path / "face/utt2emo_dist").values()) == {"neu:6"}
    prepare_crema(crema, tmp_path / "novotes", "--votes", "none")
    assert not (tmp_path / "novotes/utt2emo_dist").exists()


@pytest.mark.parametrize("breakage,words", [
    ("name", "expected <ActorID>_<SEN>_<EMO>_<LVL>.wav"),
    ("no_demographics", "VideoDemographics.csv: no such file"),
    ("unknown_actor", "actor 1004 has no row in"),
    ("votes_header", "tabulatedVotes.csv:1: header"),
    ("no_votes_row", "no voice votes for 1 clip(s), e.g. 1001_"),
])
def test_crema_wrong_layout_names_what_was_expected_where(crema, tmp_path, breakage, words):
    bad = tmp_path / "bad"
    shutil.copytree(crema, bad, symlinks=True)
    if breakage == "name":
        next((bad / "AudioWAV").glob("1001_*.wav")).rename(bad / "AudioWAV/1001_XYZ_ANG_HI.wav")
    elif breakage == "no_demographics":
        (bad / "VideoDemographics.csv").unlink()
    elif breakage == "unknown_actor":
        lines = (bad / "VideoDemographics.csv").read_text().splitlines()
        (bad / "VideoDemographics.csv").write_text("\n".join(ln for ln in lines if not ln.startswith("1004")) + "\n")
    elif breakage == "votes_header":
        path = bad / "processedResults/tabulatedVotes.csv"
        path.write_text(path.read_text().replace('"fileName"', '"clip"', 1))
    else:
        path = bad / "processedResults/tabulatedVotes.csv"
        lines = path.read_text().splitlines()
        first = next(i for i, ln in enumerate(lines) if ln.startswith('"100001"'))
        path.write_text("\n".join(lines[:first] + lines[first + 1:]) + "\n")
    assert_refused(prepare_crema, bad, tmp_path, words)


def test_crema_recipe_runs_end_to_end_with_its_default_system(crema, tmp_path):
    """TRAINS: run.sh as a user runs it (ComParE functionals + logistic regression, folds of actor groups),
    stages 1-8; the clip without audio is skipped at stage 2, counted, and the run goes on."""
    rdir = run_recipe(CREMA, tmp_path, recipe_env(SPEECHSER_CREMA_D=str(crema)), "--nj", "2", "--train_jobs", "2")
    assert CREMA_EMPTY in kv(rdir / "data/all/utt2emo") and CREMA_EMPTY not in kv(rdir / "dump/raw/all/utt2spk")
    assert_folds_done(rdir / "exp/train_compare_logreg/losess", 4)
    assert_results(rdir, "crema_d/ser1", r"^\| fold1 \| 12 \|")


# --- VIVOS --------------------------------------------------------------------------------------------

VIVOS = ROOT / "egs/vivos/asr1"
TINY_ASR = ("--model.conf.encoder.d_model 32 --model.conf.encoder.num_layers 1 --model.conf.encoder.num_heads 2 "
            "--model.conf.encoder.ffn_dim 64 --model.conf.pred_hidden 32 --model.conf.pred_embed_dim 16 "
            "--model.conf.joint_dim 32 --trainer.max_epochs 2")  # the config averages 10: training writes ave_2best


@pytest.fixture(scope="module")
def vivos(tmp_path_factory, an4) -> Path:
    return build_release(tmp_path_factory, "vivos", "vivos", build_vivos, an4)[0]


prepare_vivos = functools.partial(prepare, VIVOS / "local/prepare_vivos.py")


def test_vivos_prepare_normalizes_the_prompts_and_holds_out_whole_speakers(vivos, tmp_path):
    prepare_vivos(vivos, tmp_path / "data", "--dev-speakers", "1")
    d = tmp_path / "data"
    text = kv(d / "train_nodev/text")
    assert sorted(set(kv(d / "train_nodev/utt2spk").values())) == ["VIVOSSPK01", "VIVOSSPK02", "VIVOSSPK03"]
    assert set(kv(d / "train_dev/utt2spk").values()) == {"VIVOSSPK04"} and len(kv(d / "test/text")) == 10
    # NFD upper case in prompts.txt -> NFC lower case, one space between words
    assert text["VIVOSSPK01_R001"] == unicodedata.normalize("NFC", VIVOS_PROMPTS[0].lower()) == "khách sạn"
    assert text["VIVOSSPK01_R001"].encode() != unicodedata.normalize("NFD", "khách sạn").encode()
    assert kv(d / "test/utt2gender")["VIVOSDEV01_R001"] == kv(vivos / "test/genders.txt")["VIVOSDEV01"]
    assert kv(d / "test/utt2gender")["VIVOSDEV01_R001"] in ("m", "f")
    wav = vivos / "test/waves/VIVOSDEV02/VIVOSDEV02_R005.wav"
    assert Path(kv(d / "test/wav.scp")["VIVOSDEV02_R005"]) == wav.resolve()


@pytest.mark.parametrize("breakage,words", [
    ("no_wave", "prompts.txt:1: no audio"),
    ("extra_wave", "1 wave file(s) without a prompt in prompts.txt, e.g. VIVOSSPK01_R999"),
    ("gender", "speaker VIVOSSPK01 is not in"),
    ("no_test", "test/prompts.txt: no such file or folder"),
    ("dev_speakers", "--dev-speakers 4: the training set has 4 speakers"),
])
def test_vivos_wrong_layout_names_file_and_line(vivos, tmp_path, breakage, words):
    bad = tmp_path / "vivos"
    shutil.copytree(vivos, bad)
    opts = ["--dev-speakers", "1"]
    if breakage == "no_wave":
        (bad / "train/waves/VIVOSSPK01/VIVOSSPK01_R001.wav").unlink()
    elif breakage == "extra_wave":
        waves = bad / "train/waves/VIVOSSPK01"
        shutil.copy(waves / "VIVOSSPK01_R001.wav", waves / "VIVOSSPK01_R999.wav")
    elif breakage == "gender":
        lines = (bad / "train/genders.txt").read_text().splitlines()
        (bad / "train/genders.txt").write_text("\n".join(lines[1:]) + "\n")
    elif breakage == "no_test":
        shutil.rmtree(bad / "test")
    else:
        opts = ["--dev-speakers", "4"]
    assert_refused(prepare_vivos, bad, tmp_path, words, *opts)


def test_vivos_recipe_trains_decodes_scores_and_packs(vivos, tmp_path):
    """TRAINS: run.sh with a tiny Conformer (2 epochs), stages 1-10: speed perturbation, graphemes of the
    normalized Vietnamese text, CTC greedy decoding, WER in RESULTS.md, the packed model."""
    rdir = run_recipe(VIVOS, tmp_path, recipe_env(SPEECHSER_VIVOS=str(vivos)), "--asr_config", "conf/train_small.yaml",
                      "--asr_args", TINY_ASR, "--local_data_opts", "--dev_speakers 1", "--decoders", "ctc_greedy",
                      "--nj", "2", "--threads", "1")
    tokens = (rdir / "data/token_list/char/tokens.txt").read_text().split("\n")
    assert "ạ" in tokens and "Ạ" not in tokens  # lower-cased NFC graphemes
    assert len(kv(rdir / "dump/raw/train_nodev_sp/utt2spk")) == 3 * 15
    exp = rdir / "exp/train_small_char"
    assert (exp / "valid.acc.ave_2best.pt").is_file()  # the model inference used: what training wrote
    assert (exp / "decode_ctc_greedy_test/scores.json").is_file() and (exp / "packed/model.tar").is_file()
    assert_results(rdir, "vivos/asr1", "decode_ctc_greedy_test")


# --- EmoV-DB ------------------------------------------------------------------------------------------

EMOV = ROOT / "egs/emov_db/ser1"


@pytest.fixture(scope="module")
def emov(tmp_path_factory, emodb):
    return build_release(tmp_path_factory, "emov_db", "EmoV-DB_sorted", build_emov_db, emodb)


prepare_emov = functools.partial(prepare, EMOV / "local/prepare_emov_db.py")


def test_emov_prepare_reads_speakers_styles_and_arctic_sentences(emov, tmp_path):
    root, made = emov
    prepare_emov(root, tmp_path / "all")
    d = tmp_path / "all"
    emo, text = kv(d / "utt2emo"), kv(d / "text")
    assert sorted(emo) == sorted(made) and len(emo) == 3 * 10 + 6
    assert (d / "emotions.txt").read_text().split() == ["amu", "ang", "dis", "neu", "sle"]
    u = next(k for k in made if k.startswith("sam_ang_anger_1-15_"))
    assert emo[u] == "ang" and kv(d / "utt2spk")[u] == "sam" and kv(d / "utt2gender")[u] == "m"
    assert text[u] == f"Sentence number {int(made[u])}, said with feeling."  # whitespace normalized
    assert {e for k, e in emo.items() if k.startswith("josh_")} == {"amu", "neu", "sle"}
    prepare_emov(root, tmp_path / "notext", "--no-text")
    assert not (tmp_path / "notext/text").exists() and len(kv(tmp_path / "notext/utt2emo")) == 36


@pytest.mark.parametrize("breakage,words", [
    ("no_arctic", "cmuarctic.data: no such file: EmoV-DB's transcripts are CMU Arctic's"),
    ("speaker", "expected the speaker folders bea, jenie, josh, sam"),
    ("emotion", "expected an emotion folder (Amused, Angry, Disgusted, Neutral, Sleepy)"),
    ("name", "expected <style>_<a>-<b>_<NNNN>.wav"),
    ("sentence", "sentence arctic_a0099 is not in cmuarctic.data"),
])
def test_emov_wrong_layout_names_what_was_expected_where(emov, tmp_path, breakage, words):
    root, _ = emov
    bad = tmp_path / "EmoV-DB_sorted"
    shutil.copytree(root, bad)
    some = next((bad / "bea/Amused").glob("*.wav"))
    if breakage == "no_arctic":
        (bad / "cmuarctic.data").unlink()
    elif breakage == "speaker":
        (bad / "bea").rename(bad / "Bea_Amused")
    elif breakage == "emotion":
        (bad / "bea/Amused").rename(bad / "bea/Happy")
    elif breakage == "name":
        some.rename(some.parent / "amused_0001.wav")
    else:
        some.rename(some.parent / "amused_1-15_0099.wav")
    assert_refused(prepare_emov, bad, tmp_path, words)


def test_emov_recipe_runs_end_to_end_with_its_default_system(emov, tmp_path):
    """TRAINS: run.sh as a user runs it (ComParE functionals + logistic regression, leave one speaker out):
    4 folds, the one testing josh on his 3 styles only."""
    root, _ = emov
    rdir = run_recipe(EMOV, tmp_path, recipe_env(SPEECHSER_EMOV_DB=str(root)), "--nj", "2", "--train_jobs", "2")
    exp = rdir / "exp/train_compare_logreg/loso"
    assert_folds_done(exp, 4)
    josh = kv(exp / "fold3/decode_test/ref")  # folds in sorted speaker order: bea, jenie, josh, sam
    assert set(josh.values()) == {"amu", "neu", "sle"} and all(k.startswith("josh_") for k in josh)
    assert_results(rdir, "emov_db/ser1", r"^\| fold3 \| 6 \|")
