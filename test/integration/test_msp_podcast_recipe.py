"""The MSP-Podcast recipe (egs/msp_podcast/ser1) on a stand-in release built from Emo-DB audio.

MSP-Podcast cannot be downloaded here, so msp_podcast_fixture.build_msp_podcast_release writes a small
release in exactly the v1.12 layout (Audios/, Labels/labels_consensus.csv, Labels/labels_detailed.csv,
Transcripts/) from real Emo-DB recordings. The preparation is checked alone (fast), then bad layouts,
then the recipe runs end to end (stages 1-7, the release's own split) with a tiny TDNN on soft labels.
The last test TRAINS (one fold, 2 epochs of a model with a few thousand weights): well under 2 minutes
on 2 CPU cores.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Dict

import pytest

from speechser.config import read_yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recipe_helpers import copy_recipe, kv, sh  # noqa: E402
from msp_podcast_fixture import HAND_CHECKED, NO_ANNOTATIONS, UNKNOWN_SPEAKER, build_msp_podcast_release  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "egs/msp_podcast/ser1"
PREP = RECIPE / "local/prepare_msp_podcast.py"
CLASSES = ["neu", "hap", "sad", "ang", "dis", "con", "fea", "sur"]
CODE = dict(zip("NHSADCFU", CLASSES))


def prepare(release: Path, out: Path, *opts: str) -> subprocess.CompletedProcess:
    return sh([sys.executable, PREP, *opts, release, out], cwd=RECIPE, env=dict(os.environ), check=False,
              timeout=120)


@pytest.fixture(scope="module")
def release(tmp_path_factory, emodb) -> Path:
    return build_msp_podcast_release(tmp_path_factory.mktemp("msp"), emodb / "wav")


@pytest.fixture(scope="module")
def consensus(release) -> Dict[str, dict]:
    with open(release / "Labels/labels_consensus.csv", newline="") as f:
        return {r["FileName"]: r for r in csv.DictReader(f)}


def uid(row: dict) -> str:
    """The recipe's id of a consensus row: spk<SpkrID, 4 digits>-<stem>, or unk-<stem> for Unknown."""
    stem = row["FileName"][:-4]
    return f"unk-{stem}" if row["SpkrID"] == "Unknown" else f"spk{int(row['SpkrID']):04d}-{stem}"


def test_fixture_has_the_release_layout(release, consensus):
    assert sorted(p.name for p in release.iterdir()) == ["Audios", "Labels", "Transcripts"]
    lines = (release / "Labels/labels_consensus.csv").read_text().splitlines()
    assert lines[0] == "FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set"
    detailed = (release / "Labels/labels_detailed.csv").read_text().splitlines()
    assert detailed[0] == "FileName,WorkerID,EmoClass_Major,EmoClass_Second,EmoAct,EmoVal,EmoDom"
    assert any('"' in ln and "," in ln.split('"')[1] for ln in detailed[1:])  # quoted comma-separated lists
    letters = Counter(r["EmoClass"] for r in consensus.values())
    assert set(letters) == set("NHSADCFUOX") | {""}
    assert {r["Split_Set"] for r in consensus.values()} == {"Train", "Development", "Test1", "Test3"}
    assert 40 <= len(consensus) <= 50
    for name in consensus:
        assert (release / "Audios" / name).is_file() and (release / "Transcripts" / f"{name[:-4]}.txt").is_file()
    import soundfile
    assert soundfile.info(str(release / "Audios" / HAND_CHECKED)).samplerate == 16000


def test_prepare_writes_the_8_class_data_dir(release, consensus, tmp_path):
    """--keep_no_agreement false: every O/X utterance excluded (the challenge baseline's data)."""
    out = tmp_path / "all"
    proc = prepare(release, out, "--keep_no_agreement", "false")
    assert proc.returncode == 0, proc.stderr
    for name in ("wav.scp", "utt2spk", "spk2utt", "utt2gender", "text", "utt2emo", "utt2emo_dist", "utt2avd",
                 "utt2emo2_dist", "utt2split", "emotions.txt", "no_consensus"):
        assert (out / name).is_file(), name
    assert (out / "no_consensus").read_text() == ""  # no O/X utterance kept: an empty list
    assert (out / "emotions.txt").read_text().split() == CLASSES
    kept = {uid(r): r for r in consensus.values() if r["EmoClass"] in CODE and r["Split_Set"] != "Test3"}
    utt2emo = kv(out / "utt2emo")
    assert set(utt2emo) == set(kept) and len(kept) == 39
    assert all(utt2emo[u] == CODE[r["EmoClass"]] for u, r in kept.items())
    assert set(utt2emo.values()) == set(CLASSES)  # contempt and surprise through made-up votes
    for name in ("wav.scp", "utt2spk", "utt2gender", "text", "utt2emo", "utt2emo_dist", "utt2avd", "utt2split"):
        assert list(kv(out / name)) == sorted(kept), name
    # counts printed, and the exclusions with their reasons
    assert "39 utterances" in proc.stdout
    assert re.search(r"Train: 23: neu 6 hap 3 sad 3 ang 3 dis 3 con 1 fea 3 sur 1", proc.stdout)
    assert re.search(r"Development: 8: ", proc.stdout) and re.search(r"Test1: 8: ", proc.stdout)
    assert "excluded 3: consensus O (other)" in proc.stdout
    assert "excluded 2: consensus X (no agreement)" in proc.stdout
    assert "excluded 3: Test3" in proc.stdout
    # the split of every utterance, from Split_Set
    assert kv(out / "utt2split") == {u: r["Split_Set"] for u, r in kept.items()}
    # speakers: spk<NNNN>-<stem>; SpkrID Unknown: a per-utterance pseudo-speaker, speaker id = utterance id
    utt2spk = kv(out / "utt2spk")
    for u, spk in utt2spk.items():
        assert u.startswith(spk)
        if u.startswith("unk-"):
            assert spk == u
    unknown = {f"unk-{n[:-4]}" for n in UNKNOWN_SPEAKER}
    assert {u for u in utt2spk if u.startswith("unk-")} == unknown
    gender = kv(out / "utt2gender")
    assert gender["unk-MSP-PODCAST_1004_0001"] == "m" and gender["unk-MSP-PODCAST_2000_0003"] == "unknown"
    assert kv(out / "spk2utt")[sorted(unknown)[0]] == sorted(unknown)[0]
    assert set(kv(out / "utt2gender").values()) == {"m", "f", "unknown"}
    # the votes of the hand-made contempt utterance: Contempt x3, Angry, Other (dropped)
    hand = uid(consensus[HAND_CHECKED])
    assert hand == f"spk0003-{HAND_CHECKED[:-4]}"
    assert kv(out / "utt2emo_dist")[hand] == "ang:1 con:3"
    # its secondary emotions: "Contempt,Disgust", "Amused", "", "Angry, Annoyed", "disgust"
    assert kv(out / "utt2emo2_dist")[hand] == "ang:1 dis:2 con:1"
    assert kv(out / "utt2avd")[hand] == "4 3 5"
    # no 8-class annotation: one vote for the consensus class
    assert kv(out / "utt2emo_dist")[uid(consensus[NO_ANNOTATIONS])] == "ang:1"
    # utt2emo2_dist is partial: utterances without a secondary class word have no line
    partial = kv(out / "utt2emo2_dist")
    assert set(partial) < set(kept) and list(partial) == sorted(partial)
    assert kv(out / "text")[hand] == (release / "Transcripts" / f"{HAND_CHECKED[:-4]}.txt").read_text().strip()
    assert Path(kv(out / "wav.scp")[hand]) == (release / "Audios" / HAND_CHECKED).resolve()
    # a valid data directory, utt2spk sorted by speaker as well
    proc = sh([Path(sys.executable).parent / "speechser-validate-data-dir", "--no-feats", out], cwd=ROOT,
              env=dict(os.environ), check=False)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    proc = sh([ROOT / "utils/validate_data_dir.sh", "--no-feats", "--labels", f"utt2emo={out}/emotions.txt", out],
              cwd=ROOT, env=dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}"), check=False)
    assert proc.returncode == 0, proc.stderr + proc.stdout


@pytest.mark.parametrize("opts", [(), ("--keep_no_agreement", "true")], ids=["default", "explicit"])
def test_keep_no_agreement_keeps_train_o_and_x_with_their_plurality_class(release, consensus, tmp_path, opts):
    """The default (as --keep_no_agreement true): Train's O/X kept, listed in no_consensus."""
    out = tmp_path / "all"
    proc = prepare(release, out, *opts)
    assert proc.returncode == 0, proc.stderr
    utt2emo = kv(out / "utt2emo")
    o_train = uid(consensus["MSP-PODCAST_2001_0001.wav"])  # Other x3, Happy, Sad: tie -> hap (class order)
    x_train = uid(consensus["MSP-PODCAST_2002_0001.wav"])  # Angry x2, Sad x2, Neutral: tie -> sad
    assert utt2emo[o_train] == "hap" and utt2emo[x_train] == "sad"
    assert kv(out / "utt2emo_dist")[x_train] == "neu:1 sad:2 ang:2"
    assert len(utt2emo) == 41
    for name in ("MSP-PODCAST_2001_0002.wav", "MSP-PODCAST_2002_0002.wav", "MSP-PODCAST_2001_0003.wav"):
        assert uid(consensus[name]) not in utt2emo  # not in Train; or no 8-class vote at all
    assert "excluded 1: consensus O (other), no vote among the 8 classes" in proc.stdout
    assert set(kv(out / "utt2split")[u] for u in (o_train, x_train)) == {"Train"}
    # listed for data.skip_file (the categorical baseline leaves them out of its training set)
    assert (out / "no_consensus").read_text() == "".join(f"{u}\n" for u in sorted([o_train, x_train]))
    assert "kept 2 Train utterance(s) of consensus O/X" in proc.stdout and "no_consensus" in proc.stdout


@pytest.mark.parametrize("breakage, where, words", [
    ("missing column", "Labels/labels_consensus.csv:1", ["missing column 'Split_Set'",
                                                          "FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set"]),
    ("unknown letter", "Labels/labels_consensus.csv:5", ["EmoClass 'Q' is not a class letter", "U surprise"]),
    ("unknown word", "Labels/labels_detailed.csv:4", ["EmoClass_Major 'Joy' is not a class word", "Contempt"]),
    ("missing detailed column", "Labels/labels_detailed.csv:1", ["missing column 'EmoClass_Major'"]),
    ("missing folder", "Transcripts", ["not an MSP-Podcast release", "Audios/, Labels/ and Transcripts/"]),
    ("missing audio", "Labels/labels_consensus.csv:3", ["no audio"]),
])
def test_a_wrong_layout_names_file_and_line(release, tmp_path, breakage, where, words):
    bad = tmp_path / "MSP-Podcast"
    shutil.copytree(release / "Labels", bad / "Labels")
    (bad / "Audios").symlink_to(release / "Audios")
    (bad / "Transcripts").symlink_to(release / "Transcripts")
    cons, det = bad / "Labels/labels_consensus.csv", bad / "Labels/labels_detailed.csv"
    if breakage == "missing column":
        lines = cons.read_text().splitlines(keepends=True)
        cons.write_text("".join(ln.rsplit(",", 1)[0] + "\n" for ln in lines))
    elif breakage == "unknown letter":
        lines = cons.read_text().splitlines(keepends=True)
        lines[4] = lines[4].replace(",A,", ",Q,", 1)
        cons.write_text("".join(lines))
    elif breakage == "unknown word":
        lines = det.read_text().splitlines(keepends=True)
        lines[3] = re.sub(r",(Angry|Neutral|Other),", ",Joy,", lines[3], count=1)
        det.write_text("".join(lines))
    elif breakage == "missing detailed column":
        lines = det.read_text().splitlines(keepends=True)
        lines[0] = lines[0].replace("EmoClass_Major", "Major")
        det.write_text("".join(lines))
    elif breakage == "missing folder":
        (bad / "Transcripts").unlink()
    elif breakage == "missing audio":
        (bad / "Audios").unlink()
        (bad / "Audios").mkdir()
        for p in sorted(release.glob("Audios/*.wav"))[1:]:
            (bad / "Audios" / p.name).symlink_to(p)
        lines = cons.read_text().splitlines(keepends=True)
        cons.write_text("".join([lines[0], lines[2], lines[1], *lines[3:]]))  # the missing one on line 3
    proc = prepare(bad, tmp_path / "all")
    assert proc.returncode == 1, proc.stdout
    assert f"{bad}/{where}" in proc.stderr, proc.stderr
    assert all(w in proc.stderr for w in words), proc.stderr
    assert "Traceback" not in proc.stderr


TINY = """# a tiny TDNN on fbank with the annotators' soft labels: the recipe's plumbing, not a result
seed: 0
data:
  max_frames: 4000
  max_batch_size: 8
  soft_labels:
    file: utt2emo_dist
model:
  name: tdnn_ser
  conf:
    channels: 16
    embed_dim: 8
    dilations: [1, 2]
    dropout: 0.0
optim:
  name: adamw
  lr: 0.005
trainer:
  max_epochs: 2
  keep_nbest: 1
  average_nbest: 1
  best_metric: macro_f1
  log_interval: 0
"""


@pytest.fixture(scope="module")
def recipe(tmp_path_factory, release):
    """A copy of egs/msp_podcast/ser1 (its ser.sh and utils/ links pointing at the project's)."""
    rdir = copy_recipe(RECIPE, tmp_path_factory.mktemp("egs"))
    env = dict(os.environ, SPEECHSER_MSP_PODCAST=str(release), OMP_NUM_THREADS="1",
               PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    return rdir, env


def test_recipe_trains_end_to_end_with_a_tiny_tdnn(recipe):
    """TRAINS: stages 1-7, protocol split (train = Train, valid = Development, test = Test1)."""
    rdir, env = recipe
    (rdir / "conf/train_tiny.yaml").write_text(TINY)
    out = sh(["./run.sh", "--stage", "1", "--stop_stage", "7", "--train_config", "conf/train_tiny.yaml",
              "--cmvn_type", "speaker", "--nj", "1", "--train_jobs", "1", "--num_mel_bins", "40",
              "--inference_model", "valid.macro_f1.ave_1best.pt"], cwd=rdir, env=env)
    assert "Stage 1: data preparation" in out.stdout and "Stage 7: scoring" in out.stdout
    assert re.search(r"Successfully finished\. \[elapsed=\d+s\]", out.stdout)
    split = kv(rdir / "data/all/utt2split")
    folds = rdir / "data/split"
    assert sorted(p.name for p in folds.iterdir()) == ["fold1"]
    for part, name in (("train", "Train"), ("valid", "Development"), ("test", "Test1")):
        assert set(kv(folds / "fold1" / part / "utt2spk")) == {u for u, s in split.items() if s == name}, part
        assert (folds / "fold1" / part / "utt2emo_dist").is_file()
    # Train's O/X utterances (kept by default) are in the training part, and no_consensus (data.skip_file)
    # travelled through formatting, features and folds, cut to each part's utterances
    no_consensus = (rdir / "data/all/no_consensus").read_text().split()
    assert len(no_consensus) == 2 and {split[u] for u in no_consensus} == {"Train"}
    assert (folds / "fold1/train/no_consensus").read_text().split() == no_consensus
    assert set(no_consensus) <= set(kv(folds / "fold1/train/utt2spk"))
    for part in ("valid", "test"):
        assert (folds / "fold1" / part / "no_consensus").read_text() == "", part
    exp = rdir / "exp/train_tiny/split/fold1"
    assert (exp / "decode_test").is_dir()
    saved = read_yaml(exp / "config.yaml")
    assert saved["data"]["soft_labels"]["file"] == "utt2emo_dist" and saved["model"]["labels"] == CLASSES
    hyp = kv(exp / "decode_test/hyp")
    assert set(hyp) == {u for u, s in split.items() if s == "Test1"} and set(hyp.values()) <= set(CLASSES)
    results = (rdir / "exp/RESULTS.md").read_text()
    assert results.startswith("# RESULTS: msp_podcast/ser1")
    block = results.split("<!-- begin train_tiny-split -->", 1)[1].split("<!-- end", 1)[0]
    assert results.count("<!-- begin train_tiny-split -->") == 1
    assert re.search(r"^\| fold1 \| 8 \|", block, re.M) and "macro-F1" in block
