"""ASR training and decoding plumbing on real AN4 audio: a tiny Conformer CTC + RNN-T trained
for two epochs on 40 utterances, decoded with every decoder. Checks files and resumable
experiments, not accuracy (that needs the full recipe)."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from speechser.features.extract import extract_fbank, write_cmvn
from speechser.features.fbank import FbankOptions
from speechser.io.datadir import read_kv, subset_data_dir, write_kv
from speechser.io.format import format_data_dir
from speechser.text.tokenizer import GraphemeTokenizer
from speechser.tasks.asr import decode_asr, load_asr_config, train_asr

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


def tiny_asr_args(tmp: Path, d: Path) -> list:
    return [
        "--data.train_dir", str(d), "--data.valid_dir", str(d), "--data.token_list", str(tmp / "tokens.txt"),
        "--data.cmvn_stats", str(d / "cmvn.ark"), "--data.max_frames", "4000",
        "--model.conf.encoder.d_model", "32", "--model.conf.encoder.num_layers", "1",
        "--model.conf.encoder.num_heads", "2", "--model.conf.encoder.ffn_dim", "64",
        "--model.conf.pred_hidden", "32", "--model.conf.pred_embed_dim", "16", "--model.conf.joint_dim", "32",
        "--scheduler.warmup_steps", "5", "--optim.lr", "0.002",
        "--trainer.max_epochs", "2", "--trainer.keep_nbest", "2", "--trainer.average_nbest", "2",
    ]


@pytest.fixture(scope="module")
def tiny_asr(an4_small):
    """A tiny Conformer CTC + RNN-T trained for two epochs on the 40 utterances; returns (exp, summary)."""
    tmp = an4_small
    exp = tmp / "exp"
    summary = train_asr(load_asr_config(None, tiny_asr_args(tmp, tmp / "fmt")), exp)
    return exp, summary


def test_train_and_decode_every_decoder(an4_small, tiny_asr):
    d = an4_small / "fmt"
    exp, summary = tiny_asr
    assert summary["epochs"] == 2 and (exp / "valid.acc.ave_2best.pt").is_file()
    stats = (exp / "train_stats.tsv").read_text().splitlines()
    # each loss term of the CTC + RNN-T model beside the total, then the validation metrics
    assert stats[0].split("\t")[:6] == ["epoch", "train_loss", "train_loss_ctc", "train_loss_rnnt", "valid_acc",
                                         "valid_loss"] and len(stats) == 3
    for decoder in ("ctc_greedy", "ctc_beam", "rnnt_greedy", "rnnt_beam"):
        out = exp / f"decode_{decoder}"
        scores = decode_asr(exp, exp / "valid.acc.ave_2best.pt", d, out, decoder=decoder, beam=3)
        assert scores["wer"] >= 0 and scores["cer"] >= 0
        assert len((out / "text").read_text().splitlines()) == 40
        confs = [float(ln.split()[1]) for ln in (out / "confidence").read_text().splitlines()]
        assert len(confs) == 40 and all(0.0 <= c <= 1.0 for c in confs)
        assert json.loads((out / "scores.json").read_text())["decoder"] == decoder
        assert (out / "result.wer.md").read_text().splitlines()[-1].startswith("| test | 40 |")


def _bestrq_conf(tmp: Path, d: Path, epochs: int, **over: str):
    args = [
        "--data.train_dir", str(d), "--data.valid_dir", str(d), "--data.token_list", str(tmp / "tokens.txt"),
        "--data.cmvn_stats", str(d / "cmvn.ark"), "--data.max_frames", "4000",
        "--model.name", "bestrq_conformer",
        "--model.conf.encoder.d_model", "32", "--model.conf.encoder.num_layers", "2",
        "--model.conf.encoder.num_heads", "2", "--model.conf.encoder.ffn_dim", "64",
        "--model.conf.codebook_size", "64", "--model.conf.mask_prob", "0.05", "--model.conf.mask_span", "10",
        "--scheduler.warmup_steps", "5", "--optim.lr", "0.003",
        "--trainer.max_epochs", str(epochs), "--trainer.keep_nbest", "1", "--trainer.average_nbest", "1",
    ]
    for k, v in over.items():
        args += [f"--{k}", v]
    return load_asr_config(None, args)


def test_bestrq_loss_falls_on_an4_and_initializes_asr(an4_small):
    import torch

    from speechser.train.checkpoint import load_model_state

    tmp = an4_small
    d = tmp / "fmt"
    exp = tmp / "bestrq"
    train_asr(_bestrq_conf(tmp, d, epochs=6), exp)
    rows = [ln.split("\t") for ln in (exp / "train_stats.tsv").read_text().splitlines()]
    col = rows[0].index("train_loss")
    losses = [float(r[col]) for r in rows[1:]]
    assert losses[-1] < losses[0] - 0.2, losses
    acc_col = rows[0].index("valid_acc")
    assert float(rows[-1][acc_col]) > 1 / 64  # better than chance over the 64 codes
    # ASR initialized from the pre-trained encoder (init_param), then one epoch of training
    pre = load_model_state(exp / "valid.acc.ave_1best.pt")
    asr_conf = load_asr_config(None, [
        "--data.train_dir", str(d), "--data.valid_dir", str(d), "--data.token_list", str(tmp / "tokens.txt"),
        "--data.cmvn_stats", str(d / "cmvn.ark"), "--data.max_frames", "4000",
        "--model.conf.encoder.d_model", "32", "--model.conf.encoder.num_layers", "2",
        "--model.conf.encoder.num_heads", "2", "--model.conf.encoder.ffn_dim", "64",
        "--model.conf.pred_hidden", "32", "--model.conf.pred_embed_dim", "16", "--model.conf.joint_dim", "32",
        "--trainer.max_epochs", "1", "--trainer.keep_nbest", "1", "--trainer.average_nbest", "1",
        "--optim.lr", "0.0", "--trainer.init_param", f"[{exp / 'valid.acc.ave_1best.pt'}:encoder.]",
    ])
    asr_exp = tmp / "asr_from_bestrq"
    train_asr(asr_conf, asr_exp)
    got = load_model_state(asr_exp / "1epoch.pt")
    # lr 0: the weights stay as loaded (batch-norm running statistics still move, so they are left out)
    enc_keys = [k for k in pre if k.startswith("encoder.") and "running_" not in k and "num_batches" not in k]
    assert enc_keys and all(torch.equal(got[k], pre[k]) for k in enc_keys)


def test_filter_loop_rounds_and_convergence(an4_small, tiny_asr):
    """Bounds wide enough to keep everything: round 1 keeps all and retrains (initialized from
    round 0), round 2 sees no change and stops without retraining."""
    from speechser.filter.loop import load_filter_loop_config, rounds_markdown, run_filter_loop

    d = an4_small / "fmt"
    exp, _ = tiny_asr
    conf = load_filter_loop_config(None, [
        "--bounds.conf_min", "-1", "--bounds.conf_max", "2", "--bounds.wer_min", "-1", "--bounds.wer_max", "100",
        "--max_rounds", "3", "--checkpoint_name", "valid.acc.ave_1best.pt",
        "--train_overrides", "[--trainer.max_epochs, '1', --trainer.keep_nbest, '1', --trainer.average_nbest, '1']",
    ])
    out = an4_small / "filter"
    rows = run_filter_loop(conf, exp, exp / "valid.acc.ave_2best.pt", d, d, [], out)
    assert [r["round"] for r in rows] == [0, 1, 2]
    assert rows[1]["kept"] == 40 and rows[1]["change"] == 0.0 and rows[2]["change"] == 0.0
    assert (out / "round1/asr/valid.acc.ave_1best.pt").is_file() and not (out / "round2/asr").exists()
    assert (out / "round1/data/feats.scp").read_text() == (d / "feats.scp").read_text()
    assert (out / "final_asr").read_text().split() == [str(out / "round1/asr"),
                                                       str(out / "round1/asr/valid.acc.ave_1best.pt")]
    table = rounds_markdown(out / "rounds.tsv")
    assert table.splitlines()[0].startswith("| round | kept |") and len(table.splitlines()) == 5
    # each round's step times (issue 17): round 0 ran none, round 1 all three, the converged round 2 no retraining
    assert table.splitlines()[0].endswith("| decode train (s) | filter (s) | retrain (s) |")
    assert [r["decode_train_s"] > 0 for r in rows[1:]] == [True, True] and rows[1]["retrain_s"] > 0
    assert rows[1]["filter_s"] >= 0 and math.isnan(rows[2]["retrain_s"]) and math.isnan(rows[0]["decode_train_s"])
    assert table.splitlines()[2].endswith("| - | - | - |")
    assert json.loads((out / "round1/times.json").read_text())["retrain_s"] == round(rows[1]["retrain_s"], 2)
    # the paper's default bounds on a decode of the same data whose WER and confidence are known (the
    # tiny model's own decodes are near-empty): exact hypothesis or one word dropped, confidence
    # 0.1 / 0.5 / 0.99 in turn; the report accounts for every one of the 40 utterances
    from speechser.filter.data_filter import filter_data_dir

    refs = read_kv(d / "text")
    hyps, confs = {}, {}
    for i, (k, ref) in enumerate(sorted(refs.items())):
        words = ref.split()
        hyps[k] = " ".join(words[1:]) if 3 <= len(words) <= 19 else ref  # WER 1/n in (5 %, 40 %) or 0
        confs[k] = str((0.1, 0.5, 0.99)[i % 3])
    decode = an4_small / "known_decode"
    decode.mkdir()
    write_kv(decode / "text", hyps)
    write_kv(decode / "confidence", confs)
    report = filter_data_dir(d, decode, an4_small / "strict")
    easy = {k for k in refs if hyps[k] == refs[k] or confs[k] == "0.99"}
    corrupt = {k for k in refs if confs[k] == "0.1"}
    kept = sorted(set(refs) - easy - corrupt)
    assert 0 < len(kept) < 40 and report.total == 40 and report.not_decoded == 0
    assert (report.kept, report.too_easy, report.too_corrupt) == (len(kept), len(easy), len(corrupt))
    assert read_kv(an4_small / "strict/text") == {k: refs[k] for k in kept}
