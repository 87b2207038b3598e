"""The IEMOCAP recipe (egs/iemocap/ser1) on a stand-in release built from Emo-DB audio.

IEMOCAP cannot be downloaded here, so iemocap_fixture.build_iemocap_release writes a small
IEMOCAP_full_release in exactly the release's layout (folder names, the EmoEvaluation line format,
the transcription format) from the real Emo-DB recordings. The preparation is checked alone (fast);
then the recipe runs end to end, CmGI and the metadata system, with tiny SSL and text encoders built
here with transformers, saved, and loaded back through the from-pretrained path a hub name takes.
This test TRAINS (one fold, one or two epochs of models with a few thousand weights): a couple of
minutes on 2 CPU cores.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict

import pytest

from speechser.config import read_yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recipe_helpers import kv, sh  # noqa: E402
from iemocap_fixture import build_iemocap_release  # noqa: E402
from conftest import save_tiny_bert, save_tiny_wavlm  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "egs/iemocap/ser1"
PER_SPEAKER = 6
EVAL_LINE = re.compile(r"^\[[\d.]+ - [\d.]+\]\t(\S+)\t(\S+)\t\[")


@pytest.fixture(scope="module")
def release(tmp_path_factory, emodb) -> Path:
    return build_iemocap_release(tmp_path_factory.mktemp("iemocap"), emodb, per_speaker=PER_SPEAKER)


@pytest.fixture(scope="module")
def release_labels(release) -> Dict[str, str]:
    """utterance -> the emotion code its EmoEvaluation line gives (every utterance, kept or not)."""
    out = {}
    for ev in sorted(release.glob("Session*/dialog/EmoEvaluation/*.txt")):
        for line in ev.read_text(encoding="utf-8").splitlines():
            m = EVAL_LINE.match(line)
            if m:
                out[m.group(1)] = m.group(2)
    return out


def uid(name: str) -> str:
    """The recipe's id of a release utterance, speaker first: Ses01F_impro01_M000 -> Ses01M-Ses01F_impro01_M000."""
    return f"{name[:5]}{name.split('_')[-1][0]}-{name}"


def prepare(release: Path, out: Path) -> subprocess.CompletedProcess:
    return sh([sys.executable, RECIPE / "local/prepare_iemocap.py", release, out], cwd=ROOT, env=dict(os.environ),
              check=False, timeout=120)


def test_fixture_has_the_release_layout(release, release_labels):
    for s in range(1, 6):
        sess = release / f"Session{s}"
        dialogs = sorted(p.stem for p in (sess / "dialog/EmoEvaluation").glob("*.txt"))
        assert dialogs == [f"Ses0{s}F_impro01", f"Ses0{s}M_script01_1"]
        for d in dialogs:
            assert (sess / "dialog/transcriptions" / f"{d}.txt").is_file()
            assert (sess / "sentences/wav" / d).is_dir()
    ev = (release / "Session1/dialog/EmoEvaluation/Ses01F_impro01.txt").read_text().splitlines()
    assert ev[0] == "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]" and ev[1] == ""
    assert re.match(r"^\[\d+\.\d{4} - \d+\.\d{4}\]\tSes01F_impro01_[FM]\d{3}\t[a-z]{3}\t"
                    r"\[\d\.\d{4}, \d\.\d{4}, \d\.\d{4}\]$", ev[2])
    assert re.match(r"^C-E1:\t[A-Z][a-z]+;\t\(\)$", ev[3]) and any(ln.startswith("A-E1:\tval ") for ln in ev)
    tr = (release / "Session1/dialog/transcriptions/Ses01F_impro01.txt").read_text().splitlines()
    assert re.match(r"^Ses01F_impro01_[FM]\d{3} \[\d{3}\.\d{4}-\d{3}\.\d{4}\]: \S", tr[0])
    assert any(re.match(r"^[FM]: \[LAUGHTER\]$", ln) for ln in tr)
    codes = set(release_labels.values())
    assert {"ang", "hap", "exc", "sad", "neu", "fru", "sur", "xxx"} <= codes
    assert len(list(release.glob("Session*/sentences/wav/*/*.wav"))) == len(release_labels)


def test_prepare_writes_the_4_class_data_dir(release, release_labels, tmp_path):
    out = tmp_path / "all"
    proc = prepare(release, out)
    assert proc.returncode == 0, proc.stderr
    for name in ("wav.scp", "utt2spk", "spk2utt", "utt2emo", "text", "utt2gender", "utt2style", "utt2session",
                 "emotions.txt"):
        assert (out / name).is_file(), name
    assert (out / "emotions.txt").read_text().split() == ["ang", "hap", "neu", "sad"]
    utt2emo = kv(out / "utt2emo")
    kept = {uid(u) for u, e in release_labels.items() if e in ("ang", "hap", "exc", "sad", "neu")}
    assert set(utt2emo) == kept and len(kept) == 10 * PER_SPEAKER
    assert set(utt2emo.values()) == {"ang", "hap", "neu", "sad"}
    exc = [u for u, e in release_labels.items() if e == "exc"]
    assert exc and all(utt2emo[uid(u)] == "hap" for u in exc)  # excited merged into happy
    dropped = [uid(u) for u, e in release_labels.items() if e in ("fru", "sur", "xxx")]
    assert dropped and not set(dropped) & set(kv(out / "wav.scp"))
    for name in ("wav.scp", "utt2spk", "text", "utt2gender", "utt2style", "utt2session"):
        assert list(kv(out / name)) == sorted(kept), name
    utt2spk = kv(out / "utt2spk")
    speakers = {f"Ses0{s}{g}" for s in range(1, 6) for g in "FM"}
    assert set(utt2spk.values()) == speakers and set(kv(out / "spk2utt")) == speakers
    assert all(len(kv(out / "spk2utt")[s].split()) == PER_SPEAKER for s in speakers)
    for u, spk in utt2spk.items():
        name = u.split("-", 1)[1]
        assert spk == name[:5] + name.split("_")[-1][0] and u == f"{spk}-{name}"  # the last field's letter
    assert any(u.split("-", 1)[1][5] != spk[5] for u, spk in utt2spk.items())  # not the dialog's letter
    gender = kv(out / "utt2gender")
    assert all(gender[u] == utt2spk[u][5].lower() for u in kept) and set(gender.values()) == {"f", "m"}
    style = kv(out / "utt2style")
    assert all(style[u] == ("improvised" if "_impro" in u else "scripted") for u in kept)
    assert set(style.values()) == {"improvised", "scripted"}
    assert all(kv(out / "utt2session")[u] == u[:5] for u in kept)
    for u, wav in kv(out / "wav.scp").items():
        name = u.split("-", 1)[1]
        dialog = name.rsplit("_", 1)[0]
        assert Path(wav) == (release / f"Session{u[4]}/sentences/wav/{dialog}/{name}.wav").resolve()
    text = kv(out / "text")
    for utt in sorted(kept)[:: PER_SPEAKER - 1]:
        name = utt.split("-", 1)[1]
        trans = (release / f"Session{utt[4]}/dialog/transcriptions/{name.rsplit('_', 1)[0]}.txt").read_text()
        line = next(ln for ln in trans.splitlines() if ln.startswith(name + " "))
        assert text[utt] == line.split("]: ", 1)[1]
    assert "[LAUGHTER]" not in " ".join(text.values())


def test_prepare_names_file_and_line_of_a_malformed_line(release, tmp_path):
    bad = tmp_path / "IEMOCAP_full_release"
    shutil.copytree(release, bad)
    ev = bad / "Session3/dialog/EmoEvaluation/Ses03M_script01_1.txt"
    lines = ev.read_text(encoding="utf-8").splitlines(keepends=True)
    n = [i for i, ln in enumerate(lines) if ln.startswith("[")][1]
    lines[n] = lines[n].replace("\t", " ")  # spaces where the release has tabs
    ev.write_text("".join(lines), encoding="utf-8")
    proc = prepare(bad, tmp_path / "all")
    assert proc.returncode == 1
    assert f"{ev}:{n + 1}:" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> Dict[str, Path]:
    """A tiny WavLM and a tiny BERT (tokenizer and model in one directory), random weights, saved the way
    a downloaded hub model is, for --model.conf.*.name_or_path."""
    import torch

    root = tmp_path_factory.mktemp("pretrained")
    torch.manual_seed(0)
    # frame rate 200 Hz (stride 80): 400 frames for a 2 s utterance, room for CTC over its characters; a
    # stride of 10 (test/unit/test_cmgi_ser.py's 0.6 s tones) makes self-attention over 3,200 frames 60x slower
    save_tiny_wavlm(root / "wavlm", conv_dim=(8, 8, 8), conv_kernel=(10, 4, 4), conv_stride=(5, 4, 4))
    save_tiny_bert(root / "bert", [*"abcdefghijklmnopqrstuvwxyzäöüß", "der", "die", "das", "und", "sie", "es"])
    return {"ssl": root / "wavlm", "text": root / "bert"}


@pytest.fixture(scope="module")
def recipe(tmp_path_factory, release):
    """A recipe directory made by egs/TEMPLATE/ser1/setup.sh with IEMOCAP's run.sh, db.sh, local/ and conf/."""
    rdir = tmp_path_factory.mktemp("egs") / "iemocap" / "ser1"
    env = dict(os.environ, SPEECHSER_IEMOCAP=str(release), PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1")
    out = sh([ROOT / "egs/TEMPLATE/ser1/setup.sh", rdir], cwd=ROOT, env=env)
    assert "created" in out.stdout
    shutil.rmtree(rdir / "local")
    shutil.copytree(RECIPE / "local", rdir / "local")
    shutil.rmtree(rdir / "conf")
    shutil.copytree(RECIPE / "conf", rdir / "conf")
    for name in ("run.sh", "db.sh"):
        shutil.copy(RECIPE / name, rdir / name)
    return rdir, env


def test_recipe_trains_end_to_end_with_tiny_models(recipe, pretrained):
    """TRAINS: stages 1-7 with CmGI, then stages 5-7 with the metadata system, fold 1 only."""
    rdir, env = recipe
    cmgi = (f"--model.conf.ssl.name_or_path {pretrained['ssl']} --model.conf.text.name_or_path {pretrained['text']} "
            "--model.conf.cmgi.dim 8 --model.conf.cmgi.num_heads 2 --model.conf.embed_dim 8 "
            "--model.conf.stage1_epochs 1 --trainer.max_epochs 2 --trainer.keep_nbest 1 --trainer.average_nbest 1 "
            "--trainer.accum_grad 1 --data.max_batch_size 4")  # epoch 1: phase 1 (SSL + CTC), epoch 2: the joint model
    out = sh(["./run.sh", "--stage", "1", "--stop_stage", "7", "--folds", "1", "--train_jobs", "1", "--nj", "1",
              "--train_args", cmgi, "--inference_model", "valid.ua.ave_1best.pt"], cwd=rdir, env=env)
    assert "Stage 1: data preparation" in out.stdout and "Stage 7: scoring" in out.stdout
    assert re.search(r"Successfully finished\. \[elapsed=\d+s\]", out.stdout)
    assert len(kv(rdir / "data/all/utt2emo")) == 10 * PER_SPEAKER

    # leave-one-session-out (the config's protocol, not named on the command line): fold K tests session K
    # and validates on one speaker of session K + 1; the other speaker of that session trains
    losess = rdir / "data/losess"
    assert sorted(p.name for p in losess.glob("fold*")) == [f"fold{k}" for k in range(1, 6)]
    session, speaker = kv(rdir / "data/all/utt2session"), kv(rdir / "data/all/utt2spk")
    test_utts = set(kv(losess / "fold1/test/utt2spk"))
    assert test_utts == {u for u, s in session.items() if s == "Ses01"}
    valid = kv(losess / "fold1/valid/utt2spk")
    assert {session[u] for u in valid} == {"Ses02"} and len(set(valid.values())) == 1
    train = kv(losess / "fold1/train/utt2session")
    assert set(train.values()) == {"Ses02", "Ses03", "Ses04", "Ses05"}
    assert not {speaker[u] for u in train} & set(valid.values())

    exp = rdir / "exp/train_cmgi/losess/fold1"
    hyp = kv(exp / "decode_test/hyp")
    assert set(hyp) == test_utts and len((exp / "decode_test/hyp").read_text().splitlines()) == len(test_utts)
    assert set(hyp.values()) <= {"ang", "hap", "neu", "sad"}
    saved = read_yaml(exp / "config.yaml")["model"]
    assert saved["name"] == "cmgi_ser" and saved["labels"] == ["ang", "hap", "neu", "sad"]
    assert saved["tokens"][0] == "<blank>" and "ü" in saved["tokens"]  # graphemes of the German transcripts
    assert not any(t.isupper() for t in saved["tokens"] if len(t) == 1)  # data.lowercase_text: true
    assert saved["conf"]["ssl"]["name_or_path"] == str(pretrained["ssl"])
    assert len((exp / "train_stats.tsv").read_text().splitlines()) == 3  # header + both phases' epochs
    results = (rdir / "exp/RESULTS.md").read_text()
    assert results.startswith("# RESULTS: iemocap/ser1")
    assert results.count("<!-- begin train_cmgi-losess -->") == 1 and re.search(r"^\| fold1 \| 12 \|", results, re.M)

    # the metadata-enhanced system on the same folds: auxiliary gender, speaker and style tasks
    meta = (f"--model.conf.ssl.name_or_path {pretrained['ssl']} --model.conf.dim 8 --model.conf.embed_dim 8 "
            "--model.conf.aux_hidden 8 --model.conf.co_attention_heads 2 --model.conf.stage1_epochs 1 "
            "--model.conf.stage2_freeze 1 --trainer.max_epochs 2 --trainer.keep_nbest 1 --trainer.average_nbest 1 "
            "--data.max_batch_size 4")
    sh(["./run.sh", "--train_config", "conf/train_metadata.yaml", "--stage", "5", "--stop_stage", "7", "--folds", "1",
        "--train_jobs", "1", "--inference_model", "valid.ua.ave_1best.pt", "--train_args", meta], cwd=rdir, env=env)
    exp = rdir / "exp/train_metadata/losess/fold1"
    saved = read_yaml(exp / "config.yaml")["model"]
    assert saved["name"] == "metadata_ssl_ser"
    aux = saved["aux_labels"]
    assert sorted(aux) == ["utt2gender", "utt2spk", "utt2style"]
    assert aux["utt2gender"] == ["f", "m"] and aux["utt2style"] == ["improvised", "scripted"]
    assert aux["utt2spk"] == sorted({speaker[u] for u in train})  # seven: Ses02's other speaker and Ses03-05's
    assert "text" in saved["conf"]["aux_weights"] and saved["tokens"][0] == "<blank>"  # the auxiliary ASR task
    assert set(kv(exp / "decode_test/hyp")) == test_utts
    results = (rdir / "exp/RESULTS.md").read_text()
    assert results.count("<!-- begin train_metadata-losess -->") == 1
    assert results.count("<!-- begin train_cmgi-losess -->") == 1


def test_transcripts_lose_their_non_speech_tags(tmp_path):
    """``[LAUGHTER]``-like tags inside an utterance's transcript are not words (CTC targets, BERT input)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("prepare_iemocap", ROOT / "egs/iemocap/ser1/local/prepare_iemocap.py")
    prep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prep)
    path = tmp_path / "Ses01F_impro01.txt"
    path.write_text("Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me [LAUGHTER] now.\n"
                    "M: [BREATHING]\n"
                    "Ses01F_impro01_M001 [010.0000-011.0000]: [GARBAGE] Yeah.\n")
    assert prep.read_transcripts(path) == {"Ses01F_impro01_F000": "Excuse me now.", "Ses01F_impro01_M001": "Yeah."}
