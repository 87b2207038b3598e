"""The VLSP 2025 ASR-SER recipe, all 12 stages, on a small fixture in the release layout that
local/prepare_vlsp2025.py documents, built from real Emo-DB and AN4 audio (the challenge data
cannot be fetched here). Tiny models and few epochs: it checks the plumbing and the files a user
reads, not accuracy."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "egs/vlsp2025/asr_ser1"


def build_release(root: Path, emodb: Path, an4: Path) -> None:
    """train/dev/test, each: Emo-DB neutral + angry/sad (negative) utterances and AN4 (neutral)."""
    emo_files = sorted((emodb / "wav").glob("*.wav"))
    neg = [f for f in emo_files if f.stem[5] in "WT"]  # Emo-DB codes: W anger, T sadness, N neutral
    neu = [f for f in emo_files if f.stem[5] == "N"]
    an4_train = sorted((an4 / "wav/an4_clstk").glob("*/*.sph"))
    trans = {}
    for line in (an4 / "etc/an4_train.transcription").read_text().splitlines():
        m = re.match(r"^(?:<s>\s*)?(.*?)\s*(?:</s>)?\s*\(([^()\s]+)\)\s*$", line.strip())
        if m:
            trans[m.group(2)] = m.group(1)
    an4_train = [f for f in an4_train if f.stem in trans]
    sizes = {"train": (10, 10, 20), "dev": (5, 5, 6), "test": (5, 5, 6)}
    start = {"neg": 0, "neu": 0, "an4": 0}
    for split, (n_neg, n_neu, n_an4) in sizes.items():
        d = root / split
        (d / "wav").mkdir(parents=True)
        rows = ["id\tspeaker\temotion\ttranscript"]
        picks = [("neg", neg, n_neg, "negative"), ("neu", neu, n_neu, "neutral"), ("an4", an4_train, n_an4, "neutral")]
        for name, pool, n, emo in picks:
            for f in pool[start[name] : start[name] + n]:
                samples, rate = sf.read(str(f))
                uid = f"{name}_{f.stem}"
                sf.write(str(d / "wav" / f"{uid}.wav"), samples, rate)
                spk = f.stem[:2] if name != "an4" else f.parent.name
                text = "der Satz" if name != "an4" else trans[f.stem]
                rows.append(f"{uid}\t{spk}\t{emo}\t{text}")
            start[name] += n
        (d / "metadata.tsv").write_text("\n".join(rows) + "\n")


TINY_ENCODER = {"d_model": 32, "num_layers": 2, "num_heads": 2, "ffn_dim": 64, "conv_kernel": 15}


def write_augment_lists(root: Path, an4: Path) -> tuple:
    """On-the-fly augmentation lists: AN4 recordings as noise, two synthetic exponential-decay RIRs."""
    import numpy as np

    root.mkdir(parents=True, exist_ok=True)
    sph = sorted((an4 / "wav/an4test_clstk").glob("*/*.sph"))[:3]
    (root / "noise.scp").write_text("".join(f"noise{i} {f}\n" for i, f in enumerate(sph)))
    rng = np.random.default_rng(0)
    rirs = []
    for i, tau in enumerate((0.03, 0.08)):
        n = np.arange(int(0.25 * 16000))
        h = 0.3 * rng.standard_normal(n.shape[0]) * np.exp(-n / (tau * 16000))
        h[0] = 1.0
        sf.write(str(root / f"rir{i}.wav"), np.concatenate([np.zeros(8 * i), h]).astype(np.float32), 16000,
                 subtype="FLOAT")
        rirs.append(f"rir{i} {root / f'rir{i}.wav'}\n")
    (root / "rir.scp").write_text("".join(rirs))
    return root / "noise.scp", root / "rir.scp"


def write_tiny_confs(conf: Path, whisper: Optional[Path] = None) -> None:
    """Small configs for every stage; with ``whisper`` (a local Whisper model directory) the SER stage runs
    the real pretrained encoder (frozen, its 4th hidden state) fused with the ASR encoder, else a tiny TDNN."""
    import yaml

    # the recipe's own augmentation sections (the probabilities and ranges a user runs with)
    augment = {t: yaml.safe_load((conf / f"train_{t}.yaml").read_text())["data"]["augment"] for t in ("asr", "ser")}

    common = {"optim": {"name": "adam", "lr": 0.002}, "scheduler": {"name": "noam", "warmup_steps": 10},
              "trainer": {"max_epochs": 2, "keep_nbest": 1, "average_nbest": 1, "best_metric": "acc"}}
    (conf / "bestrq.yaml").write_text(yaml.safe_dump({**common, "model": {"name": "bestrq_conformer", "conf": {
        "encoder": TINY_ENCODER, "codebook_size": 64, "mask_prob": 0.05, "mask_span": 10}}}))
    (conf / "asr.yaml").write_text(yaml.safe_dump({**common, "data": {"augment": augment["asr"]},
                                                   "model": {"name": "conformer_transducer", "conf": {
        "encoder": TINY_ENCODER, "pred_embed_dim": 16, "pred_hidden": 32, "joint_dim": 32}}}))
    (conf / "filter.yaml").write_text(yaml.safe_dump({
        "bounds": {"conf_min": -1.0, "conf_max": 2.0, "wer_min": -1.0, "wer_max": 100.0}, "max_rounds": 1,
        "train_overrides": ["--trainer.max_epochs", "1"]}))
    ser_model = {"name": "tdnn_asr_fusion", "conf": {"channels": 16, "embed_dim": 8, "fusion_heads": 2,
                                                     "supcon_weight": 0.5}}
    if whisper is not None:
        ser_model = {"name": "ssl_ser", "conf": {"ssl": {"name_or_path": str(whisper), "layer": 4, "freeze_all": True},
                                                 "dim": 32, "embed_dim": 8, "fusion_heads": 2, "supcon_weight": 0.5}}
    (conf / "ser.yaml").write_text(yaml.safe_dump({
        "data": {"max_frames": 3000, "load_audio": True, "augment": augment["ser"]},
        "model": ser_model, "trainer": {"max_epochs": 2, "keep_nbest": 1, "average_nbest": 1}}))


def make_recipe(tmp: Path, emodb: Path, an4: Path, whisper: Optional[Path] = None) -> tuple:
    """The release fixture, a recipe directory with the tiny configs (the SER stage on ``whisper`` when given),
    and the environment to run it in: ``(recipe dir, env)`` (also used by ``test/bench/bench_infer.py``)."""
    build_release(tmp / "release", emodb, an4)
    rdir = tmp / "egs/vlsp2025/asr_ser1"
    rdir.mkdir(parents=True)
    for name in ("run.sh", "path.sh", "cmd.sh", "db.sh", "conf", "local"):
        (shutil.copytree if (RECIPE / name).is_dir() else shutil.copy)(RECIPE / name, rdir / name)
    (rdir / "asr_ser.sh").symlink_to(ROOT / "egs/TEMPLATE/asr_ser1/asr_ser.sh")
    (rdir / "utils").symlink_to(ROOT / "utils")
    write_tiny_confs(rdir / "conf", whisper)
    noise_scp, rir_scp = write_augment_lists(tmp / "augment", an4)
    # The recipe's front-end defaults are the paper's (128-bin fbank, < 0.5 s dropped): not overridden here.
    env = dict(os.environ, SPEECHSER_VLSP2025=str(tmp / "release"), SPEECHSER_NOISE_SCP=str(noise_scp),
               SPEECHSER_RIR_SCP=str(rir_scp),
               PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    return rdir, env


@pytest.fixture(scope="module")
def vlsp_run(emodb, an4, whisper_base, tmp_path_factory):
    """The recipe on the fixture, its SER stage on the real Whisper base encoder."""
    rdir, env = make_recipe(tmp_path_factory.mktemp("vlsp"), emodb, an4, whisper_base)
    args = ["./run.sh", "--bestrq_config", "conf/bestrq.yaml", "--bestrq_model", "valid.acc.ave_1best.pt",
            "--asr_config", "conf/asr.yaml", "--asr_model", "valid.acc.ave_1best.pt",
            "--filter_config", "conf/filter.yaml", "--ser_config", "conf/ser.yaml",
            "--ser_model", "valid.ua.ave_1best.pt", "--nj", "2"]
    proc = subprocess.run(args, cwd=rdir, env=env, capture_output=True, text=True)
    return rdir, proc


def test_all_stages_run_and_write_what_users_read(vlsp_run):
    rdir, proc = vlsp_run
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert re.search(r"Successfully finished\. \[elapsed=\d+s\]", proc.stdout)
    for stage in range(1, 12):
        assert f"Stage {stage}:" in proc.stdout, stage
    assert (rdir / "data/emotions.txt").read_text().split() == ["negative", "neutral"]
    assert len((rdir / "data/train/utt2spk").read_text().splitlines()) == 40
    tokens = (rdir / "data/token_list/char/tokens.txt").read_text().split("\n")
    assert tokens[:3] == ["<blank>", "<unk>", "<space>"]
    # BEST-RQ initialized the ASR encoder
    assert "init_param: " in (rdir / "exp/asr_char/train.log").read_text()
    # the paper's front-end, recorded with the features; on-the-fly augmentation of the training sets
    assert "minimum 0.5 s" in proc.stdout and "fbank (128 bins)" in proc.stdout
    opts = json.loads(next((rdir / "dump/fbank/train/data").glob("*.fbank.json")).read_text())
    assert opts["num_mel_bins"] == 128 and opts["frame_length_ms"] == 25.0 and opts["frame_shift_ms"] == 10.0
    assert "Augmentation: noise recordings from" in proc.stdout
    for log in ("exp/asr_char/train.log", "exp/ser/train.log"):
        line = next(x for x in (rdir / log).read_text().splitlines() if "waveform augmentation:" in x)
        assert "pitch p=" in line and "noise p=" in line and "reverb p=" in line, line
    # the filter loop (under the ASR experiment exp/<asr_tag>, as in asr.sh): one retrained round, its report and table
    rounds = (rdir / "exp/asr_char/filter/rounds.tsv").read_text().splitlines()
    assert rounds[0].startswith("round\tkept") and len(rounds) == 3
    assert (rdir / "exp/asr_char/filter/round1/data.report.txt").is_file()
    final_exp = (rdir / "exp/asr_char/filter/final_asr").read_text().split()[0]
    assert final_exp == "exp/asr_char/filter/round1/asr"
    ser_conf = (rdir / "exp/ser/config.yaml").read_text()
    assert "asr_exp_dir: exp/asr_char/filter/round1/asr" in ser_conf
    knn = json.loads((rdir / "exp/ser/knn/knn_params.json").read_text())
    assert {"beta", "k", "temperature", "valid_ua_model", "valid_ua_knn"} <= set(knn)
    results = (rdir / "exp/RESULTS.md").read_text()
    for tag in ("challenge-ser", "challenge-ser+knn", "asr", "filter-rounds"):
        assert f"<!-- begin {tag} -->" in results, tag
    scores = json.loads((rdir / "exp/ser/knn/test/challenge_scores.json").read_text())
    # the final ASR's decode, in its experiment (as asr.sh decodes)
    asr_wer = json.loads((rdir / f"{final_exp}/decode_ctc_greedy_test/scores.json").read_text())["wer"]
    assert scores["wer"] == asr_wer and scores["n"] == 16
    assert scores["final"] == pytest.approx(0.7 * (1 - scores["wer"]) + 0.3 * scores["acc_ser"])


def test_release_errors_name_file_and_line(tmp_path):
    d = tmp_path / "rel/train"
    (d / "wav").mkdir(parents=True)
    (d / "metadata.tsv").write_text("id\tspeaker\temotion\ttranscript\nu1\ts1\tneutral\thello\n")
    proc = subprocess.run([sys.executable, str(RECIPE / "local/prepare_vlsp2025.py"), str(tmp_path / "rel"),
                           str(tmp_path / "data")], capture_output=True, text=True)
    assert proc.returncode != 0 and "metadata.tsv:2: audio" in proc.stderr
    (d / "metadata.tsv").write_text("id\tspeaker\ttranscript\n")
    proc = subprocess.run([sys.executable, str(RECIPE / "local/prepare_vlsp2025.py"), str(tmp_path / "rel"),
                           str(tmp_path / "data")], capture_output=True, text=True)
    assert proc.returncode != 0 and "metadata.tsv:1: expected the header" in proc.stderr


def test_the_joint_system_is_packed_and_labels_audio_in_one_pass(vlsp_run, tmp_path):
    """Issue 15: stage 12 packs the final ASR model with the SER model fused with its encoder; one-pass
    inference over the test set's original audio (a wav.scp, no labels) gives stage 10's transcripts and
    stage 9's SER posteriors, and the same as two separate passes."""
    from speechser import Speech2TextEmotion

    rdir, proc = vlsp_run
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "Stage 12: packing" in proc.stdout
    arc = rdir / "exp/ser/packed/joint.tar"
    assert arc.is_file()
    model = Speech2TextEmotion.from_packed(arc, device="cpu")
    assert model.packed.why_two_passes is None  # the SER branch is the frozen ASR encoder
    scp = rdir / "data/test/wav.scp"
    branch = model.packed.ser.ser.model.asr
    encode = branch.encode

    def must_not_encode(*args, **kwargs):
        raise AssertionError("the SER branch encoded again in one-pass inference")

    branch.encode = must_not_encode  # one pass: every SER utterance reads the ASR model's encoder output
    one = model.infer([scp], one_pass=True)
    branch.encode = encode
    assert set(model.last_seconds) == {"features", "asr", "ser"}
    two = model.infer([scp], one_pass=False)
    final_exp = (rdir / "exp/asr_char/filter/final_asr").read_text().split()[0]
    stage10 = dict((ln.split(" ", 1) + [""])[:2]
                   for ln in (rdir / final_exp / "decode_ctc_greedy_test/text").read_text().splitlines())
    lines = (rdir / "exp/ser/decode_test/posteriors.tsv").read_text().splitlines()
    classes = lines[0].split("\t")[1:]
    stage9 = {ln.split("\t")[0]: [float(x) for x in ln.split("\t")[1:]] for ln in lines[1:]}
    assert len(one.items) == len(stage9) == 16 and not one.skipped
    for a, b in zip(one.items, two.items):
        assert a.key == b.key and a.transcript == b.transcript == stage10[a.key]
        assert max(abs(a.probabilities[c] - p) for c, p in zip(classes, stage9[a.key])) < 1e-4
        assert max(abs(a.probabilities[c] - b.probabilities[c]) for c in classes) < 1e-4
        assert a.asr_confidence is not None and a.emotion in classes
    model.packed.close()
