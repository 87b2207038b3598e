"""The AN4 ASR recipe's stages end to end on real AN4 audio, shrunk for the test suite:
60/20/20 utterances, a one-layer model, one epoch. Checks the plumbing and the files; the
recipe's accuracy is for RESULTS.md."""

import os
import re
import subprocess
import sys
from pathlib import Path

from recipe_helpers import small_an4_recipe

ROOT = Path(__file__).resolve().parents[2]


def test_an4_recipe_small(an4, tmp_path):
    # the real preparation, then the first N utterances of each set
    rdir = small_an4_recipe(tmp_path / "egs", "train_nodev:60 train_dev:20 test:20")
    env = dict(os.environ, SPEECHSER_AN4=str(an4), PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    tiny = ("--model.conf.encoder.d_model 32 --model.conf.encoder.num_layers 1 --model.conf.encoder.num_heads 2 "
            "--model.conf.encoder.ffn_dim 64 --model.conf.pred_hidden 32 --model.conf.pred_embed_dim 16 "
            "--model.conf.joint_dim 32 --trainer.max_epochs 1")  # the config averages 5: 1 epoch writes ave_1best
    # stage 7, the data filter loop, with bounds wide enough to keep an undertrained model's decodes
    (rdir / "conf/filter_wide.yaml").write_text(
        "bounds: {conf_min: -1.0, conf_max: 2.0, wer_min: -1.0, wer_max: 100.0}\nmax_rounds: 1\n"
        "train_overrides: [--trainer.max_epochs, '1']\n")
    # no --inference_model, no filter checkpoint_name: the stages use the model training wrote (ave_1best)
    proc = subprocess.run(["./run.sh", "--asr_args", tiny,
                           "--beam_size", "2", "--nj", "2", "--filter_config", "conf/filter_wide.yaml"],
                          cwd=rdir, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert re.search(r"Successfully finished\. \[elapsed=\d+s\]", proc.stdout)
    sp = (rdir / "dump/raw/train_nodev_sp/utt2spk").read_text().splitlines()
    assert len(sp) == 180 and sum(ln.startswith("sp0.9-") for ln in sp) == 60
    assert (rdir / "data/token_list/char/tokens.txt").read_text().split("\n")[:3] == ["<blank>", "<unk>", "<space>"]
    exp = rdir / "exp/train_char"
    assert (exp / "config.yaml").is_file() and (exp / "valid.acc.ave_1best.pt").is_file()
    results = (rdir / "exp/RESULTS.md").read_text()
    assert "<!-- begin filter-rounds -->" in results
    assert re.search(r"^\| 1 \| 180 \| 0 \| 0 \| 0 \| 0.0000 \|", results, re.M)  # round 1 kept all 180
    assert (exp / "filter/round1/asr/valid.acc.ave_1best.pt").is_file()
    # stages 8-10 decode, score and pack the final model: the filter loop's last round
    final = exp / "filter/round1/asr"
    assert (rdir / (exp / "filter/final_asr").read_text().split()[0]).resolve() == final.resolve()
    for dec in ("ctc_greedy", "ctc_beam", "rnnt_greedy"):
        for s in ("train_dev", "test"):
            assert (final / f"decode_{dec}_{s}/confidence").is_file()
            assert re.search(rf"^\| asr/decode_{dec}_{s} \| 20 \| \d+ \|", results, re.M)

    # stage 10 packed the final model with the decoder of lowest WER on train_dev; the archive transcribes the
    # test set's audio from a plain list of files as stage 8 did with that decoder
    import json

    arc = exp / "packed/model.tar"
    assert arc.is_file()
    proc = subprocess.run(["tar", "xOf", str(arc), "meta.json"], capture_output=True, text=True, check=True)
    meta = json.loads(proc.stdout)
    valid_wer = {d: json.loads((final / f"decode_{d}_train_dev/scores.json").read_text())["wer"]
                 for d in ("ctc_greedy", "ctc_beam", "rnnt_greedy", "rnnt_beam")}
    assert meta["task"] == "asr" and valid_wer[meta["decoder"]] == min(valid_wer.values())
    wav = dict(ln.split(" ", 1) for ln in (rdir / "dump/raw/test/wav.scp").read_text().splitlines())
    (tmp_path / "list.txt").write_text("".join(f"{wav[k]}\n" for k in sorted(wav)))
    proc = subprocess.run(["speechser-infer", str(tmp_path / "list.txt"), "--model", str(arc), "--out-dir",
                           str(tmp_path / "out")], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = dict((ln.split(" ", 1) + [""])[:2] for ln in (tmp_path / "out/text").read_text().splitlines())
    stage8 = final / f"decode_{meta['decoder']}_test/text"
    want = dict((ln.split(" ", 1) + [""])[:2] for ln in stage8.read_text().splitlines())
    assert got == want and len(got) == 20
    assert not (tmp_path / "out/utt2emo").exists()
    rows = (tmp_path / "out/results.tsv").read_text().splitlines()
    assert rows[0].split("\t")[:7] == ["key", "recording", "start", "end", "emotion", "transcript", "asr_confidence"]
