"""ASR training and decoding plumbing on real AN4 audio: a tiny Conformer CTC + RNN-T trained
for two epochs on 40 utterances, decoded with every decoder. Checks files and resumable
experiments, not accuracy (that needs the full recipe)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from speechser.features.extract import extract_fbank, write_cmvn
from speechser.features.fbank import FbankOptions
from speechser.io.datadir import read_kv, subset_data_dir, write_kv
from speechser.io.format import format_data_dir
from speechser.text.tokenizer import GraphemeTokenizer
from speechser.train.asr import decode_asr, load_asr_config, train_asr

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def an4_small(an4, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("an4")
    subprocess.run([sys.executable, str(ROOT / "egs/an4/asr1/local/prepare_an4.py"), str(an4), str(tmp / "data")],
                   check=True, capture_output=True)
    subset_data_dir(tmp / "data/train_nodev", tmp / "sub", first=40)
    format_data_dir(tmp / "sub", tmp / "fmt", tmp / "wav")
    extract_fbank(tmp / "fmt", tmp / "fmt/raw", opts=FbankOptions(num_mel_bins=40))
    write_kv(tmp / "fmt/feats.scp", read_kv(tmp / "fmt/raw.scp"))
    write_kv(tmp / "fmt/utt2num_frames", read_kv(tmp / "fmt/raw.num_frames"))
    write_cmvn(tmp / "fmt", per_speaker=False)
    tokens = GraphemeTokenizer.build_token_list(read_kv(tmp / "fmt/text").values())
    (tmp / "tokens.txt").write_text("\n".join(tokens) + "\n")
    return tmp


def test_train_and_decode_every_decoder(an4_small):
    tmp = an4_small
    d = tmp / "fmt"
    conf = load_asr_config(None, [
        "--data.train_dir", str(d), "--data.valid_dir", str(d), "--data.token_list", str(tmp / "tokens.txt"),
        "--data.cmvn_stats", str(d / "cmvn.ark"), "--data.max_frames", "4000",
        "--model.conf.encoder.d_model", "32", "--model.conf.encoder.num_layers", "1",
        "--model.conf.encoder.num_heads", "2", "--model.conf.encoder.ffn_dim", "64",
        "--model.conf.pred_hidden", "32", "--model.conf.pred_embed_dim", "16", "--model.conf.joint_dim", "32",
        "--scheduler.warmup_steps", "5", "--optim.lr", "0.002",
        "--trainer.max_epochs", "2", "--trainer.keep_nbest", "2", "--trainer.average_nbest", "2",
    ])
    exp = tmp / "exp"
    summary = train_asr(conf, exp)
    assert summary["epochs"] == 2 and (exp / "valid.acc.ave_2best.pt").is_file()
    stats = (exp / "train_stats.tsv").read_text().splitlines()
    assert stats[0].split("\t")[:4] == ["epoch", "train_loss", "valid_acc", "valid_loss"] and len(stats) == 3
    for decoder in ("ctc_greedy", "ctc_beam", "rnnt_greedy", "rnnt_beam"):
        out = exp / f"decode_{decoder}"
        scores = decode_asr(exp, exp / "valid.acc.ave_2best.pt", d, out, decoder=decoder, beam=3)
        assert scores["wer"] >= 0 and scores["cer"] >= 0
        assert len((out / "text").read_text().splitlines()) == 40
        confs = [float(ln.split()[1]) for ln in (out / "confidence").read_text().splitlines()]
        assert len(confs) == 40 and all(0.0 <= c <= 1.0 for c in confs)
        assert json.loads((out / "scores.json").read_text())["decoder"] == decoder
        assert (out / "result.wer.md").read_text().splitlines()[-1].startswith("| test | 40 |")
