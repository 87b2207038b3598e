"""Decoding decodes every utterance of a set; scoring refuses a decode that lacks some; the
tokenizer's text settings (lower-casing) travel with its token list into training and decoding."""

import json
from pathlib import Path

import pytest
import torch

from speechser.config import dump_config
from speechser.data.asr_dataset import FeatsTextDataset
from speechser.io.datadir import DataDirError, read_kv
from speechser.metrics.asr import write_asr_scores
from speechser.metrics.report import asr_report
from speechser.models.registry import build_model, model_config_dict
from speechser.text.tokenizer import GraphemeTokenizer, read_tokenizer_settings, write_tokenizer_settings
from speechser.tasks.asr import ASRTrainConfig, build_tokenizer, decode_asr

# 0.6 s of audio = 60 frames -> 14 frames after 4x subsampling: 20 letters cannot be aligned.
LONG = "a b c d e f g h i j k l m n o p q r s t"


@pytest.fixture
def feats_with_an_unalignable_utterance(make_feats_dir):
    d = make_feats_dir(n_spk=1, n_utt=3, seconds=0.6)
    texts = {"spkA-u0": "go", "spkA-u1": LONG, "spkA-u2": "no"}
    (d / "text").write_text("".join(f"{k} {v}\n" for k, v in texts.items()))
    return d, texts


def encoder_frames(subsampling: str):
    """``n -> encoder frames`` of an encoder with ``subsampling`` (no blocks: only the subsampling counts)."""
    from speechser.nets.conformer import ConformerConfig, ConformerEncoder

    return ConformerEncoder(40, ConformerConfig(d_model=8, num_layers=0, num_heads=1, ffn_dim=8,
                                                subsampling=subsampling)).output_frames


@pytest.mark.parametrize("subsampling", ["conv2d4", "dw_striding8"])
def test_unalignable_modes(feats_with_an_unalignable_utterance, subsampling):
    """The count is the encoder's: 60 frames keep 14 at 4x and 8 at 8x, fewer than LONG's 39 tokens."""
    d, texts = feats_with_an_unalignable_utterance
    tok = GraphemeTokenizer(GraphemeTokenizer.build_token_list(texts.values()))
    frames = encoder_frames(subsampling)
    skip = FeatsTextDataset(d, tok, encoder_frames=frames, unalignable="skip")
    assert skip.keys == ["spkA-u0", "spkA-u2"] and skip.skipped == ["spkA-u1"]
    keep = FeatsTextDataset(d, tok, unalignable="keep")
    assert keep.keys == ["spkA-u0", "spkA-u1", "spkA-u2"] and keep.skipped == []
    with pytest.raises(DataDirError, match=r"text:2: utterance 'spkA-u1'"):
        FeatsTextDataset(d, tok, encoder_frames=frames, unalignable="error")
    with pytest.raises(ValueError, match="needs encoder_frames"):
        FeatsTextDataset(d, tok, unalignable="skip")


def test_a_target_that_fits_4x_but_not_8x_is_counted_unalignable_only_at_8x(make_feats_dir):
    """20 tokens in 1.0 s (100 frames): 24 encoder frames at 4x, 13 at 8x."""
    d = make_feats_dir(n_spk=1, n_utt=2, seconds=1.0)
    texts = {"spkA-u0": "abcdefghijklmnopqrst", "spkA-u1": "ab"}
    (d / "text").write_text("".join(f"{k} {v}\n" for k, v in texts.items()))
    tok = GraphemeTokenizer(GraphemeTokenizer.build_token_list(texts.values()))
    n = int(read_kv(d / "utt2num_frames")["spkA-u0"])
    assert encoder_frames("conv2d4")(n) >= 20 > encoder_frames("dw_striding8")(n)
    assert FeatsTextDataset(d, tok, encoder_frames=encoder_frames("conv2d4"), unalignable="skip").skipped == []
    eight = FeatsTextDataset(d, tok, encoder_frames=encoder_frames("dw_striding8"), unalignable="skip")
    assert eight.skipped == ["spkA-u0"] and eight.keys == ["spkA-u1"]


def test_the_asr_task_trains_only_asr_models(tmp_path):
    """An ASR model says how many encoder frames an input keeps (``output_frames``, which the unalignable
    rule asks); naming an SER model in an ASR config is a config error listing the ASR models."""
    from speechser.config import ConfigError
    from speechser.tasks.asr import load_asr_config

    base = ["--data.train_dir", str(tmp_path), "--data.valid_dir", str(tmp_path)]
    with pytest.raises(ConfigError, match="'tdnn_ser' is not an ASR model .*bestrq_conformer, conformer_transducer"):
        load_asr_config(None, base + ["--model.name", "tdnn_ser"])
    conf = load_asr_config(None, base + ["--model.conf.encoder.subsampling", "dw_striding8"])
    model = build_model(conf.model.name, conf.model.conf, input_dim=40, vocab_size=5)
    assert model.output_frames(100) == model.encoder.output_frames(100) == 13


def tiny_experiment(tmp_path: Path, data_dir: Path, token_dir: Path) -> tuple[Path, Path]:
    """An experiment directory as training leaves it (config.yaml + weights), with random weights."""
    conf = ASRTrainConfig()
    conf.data.train_dir = conf.data.valid_dir = str(data_dir)
    conf.data.token_list = str(token_dir / "tokens.txt")
    conf.data.cmvn_type = "none"
    conf.model.conf = model_config_dict("conformer_transducer", {
        "encoder": {"d_model": 16, "num_layers": 1, "num_heads": 2, "ffn_dim": 32, "conv_kernel": 3},
        "pred_embed_dim": 8, "pred_hidden": 8, "joint_dim": 8})
    tok = build_tokenizer(conf.data)
    conf.model.input_dim, conf.model.vocab_size = 40, tok.vocab_size  # what training records
    exp = tmp_path / "exp"
    exp.mkdir()
    dump_config(conf, exp / "config.yaml")
    torch.manual_seed(0)
    model = build_model("conformer_transducer", conf.model.conf, input_dim=40, vocab_size=tok.vocab_size)
    torch.save(model.state_dict(), exp / "model.pt")
    return exp, exp / "model.pt"


def make_tokens(tmp_path: Path, texts, lowercase: bool) -> Path:
    token_dir = tmp_path / "tokens"
    token_dir.mkdir()
    tokens = GraphemeTokenizer.build_token_list(texts, lowercase)
    (token_dir / "tokens.txt").write_text("".join(f"{t}\n" for t in tokens))
    write_tokenizer_settings(token_dir, "char", lowercase)
    return token_dir


def test_decoding_scores_every_utterance_including_unalignable_ones(tmp_path, feats_with_an_unalignable_utterance):
    d, texts = feats_with_an_unalignable_utterance
    exp, ckpt = tiny_experiment(tmp_path, d, make_tokens(tmp_path, texts.values(), False))
    out = tmp_path / "decode"
    decode_asr(exp, ckpt, d, out, "ctc_greedy", device="cpu")
    assert sorted(read_kv(out / "text", allow_empty_value=True)) == sorted(texts)
    meta = json.loads((out / "scores.json").read_text())
    assert meta["n"] == meta["n_ref"] == 3 and meta["missing"] == 0
    snt = (out / "result.wer.md").read_text().splitlines()[-1].split("|")[2].strip()
    assert snt == "3"
    asr_report([out], "t", "cmd")  # a complete decode is accepted


def test_scoring_refuses_missing_hypotheses_unless_told(tmp_path):
    refs = {"a": "ONE TWO", "b": "THREE", "c": "FOUR FIVE"}
    with pytest.raises(DataDirError, match=r"no hypothesis for 1 of 3 .*: b"):
        write_asr_scores(refs, {"a": "ONE TWO", "c": "FOUR FIVE"}, tmp_path / "s")
    scores = write_asr_scores(refs, {"a": "ONE TWO", "c": "FOUR FIVE"}, tmp_path / "s", allow_missing=True)
    assert scores["missing"] == 1 and scores["wer"] == pytest.approx(1 / 5)  # b's word counted as deleted
    # a decode directory that scored fewer utterances than its set has is refused by the report
    (tmp_path / "s" / "scores.json").write_text(json.dumps({"wer": 0.0, "n": 2, "n_ref": 3}))
    with pytest.raises(DataDirError, match="2 of 3"):
        asr_report([tmp_path / "s"], "t", "cmd")
    assert "2 of 3" in asr_report([tmp_path / "s"], "t", "cmd", allow_missing=True)
    (tmp_path / "s" / "scores.json").write_text(json.dumps({"wer": 0.0, "n": 2, "skipped": ["b"]}))
    with pytest.raises(DataDirError, match="does not record"):
        asr_report([tmp_path / "s"], "t", "cmd")


def test_lowercase_travels_with_the_token_list(tmp_path, feats_with_an_unalignable_utterance):
    from speechser.bin.make_tokens import main as make_tokens_main

    d, _ = feats_with_an_unalignable_utterance
    (d / "text").write_text("spkA-u0 GO\nspkA-u1 No\nspkA-u2 GO NO\n")
    assert make_tokens_main([str(d / "text"), str(tmp_path / "tok"), "--lowercase"]) == 0
    assert read_tokenizer_settings(tmp_path / "tok" / "tokens.txt") == {"token_type": "char", "lowercase": True}
    exp, ckpt = tiny_experiment(tmp_path, d, tmp_path / "tok")
    conf = ASRTrainConfig()
    conf.data.token_list = str(tmp_path / "tok" / "tokens.txt")
    tok = build_tokenizer(conf.data)
    assert tok.lowercase and tok.encode("GO") == tok.encode("go") and 1 not in tok.encode("GO NO")  # no <unk>
    out = tmp_path / "decode"
    decode_asr(exp, ckpt, d, out, "ctc_greedy", device="cpu")
    assert read_kv(out / "ref")["spkA-u2"] == "go no"  # references scored as the tokenizer sees them


def test_malformed_tokenizer_settings_name_the_file(tmp_path):
    (tmp_path / "tokens.txt").write_text("<blank>\n<unk>\n")
    (tmp_path / "tokenizer.json").write_text('{"lowercase": "yes"}')
    with pytest.raises(ValueError, match="tokenizer.json.*lowercase"):
        read_tokenizer_settings(tmp_path / "tokens.txt")
    (tmp_path / "tokenizer.json").write_text('{"lowercase": true, "casing": 1}')
    with pytest.raises(ValueError, match="unknown key 'casing'"):
        read_tokenizer_settings(tmp_path / "tokens.txt")


def test_filter_compares_hypotheses_with_the_tokenizer_normalized_references(tmp_path, make_feats_dir):
    """With a lower-casing tokenizer the decoder's hypotheses are lower case; the filter must compare them
    with the references as the tokenizer sees them (the decode's ``ref``), not the raw upper-case text."""
    from speechser.filter.data_filter import FilterBounds, filter_data_dir

    d = make_feats_dir(n_spk=1, n_utt=2, seconds=0.6)
    (d / "text").write_text("spkA-u0 GO NORTH\nspkA-u1 NO\n")
    dec = tmp_path / "dec"
    dec.mkdir()
    (dec / "text").write_text("spkA-u0 go north\nspkA-u1 no\n")
    (dec / "ref").write_text("spkA-u0 go north\nspkA-u1 no\n")
    (dec / "confidence").write_text("spkA-u0 0.5\nspkA-u1 0.5\n")
    keep_perfect = FilterBounds(conf_min=0.0, conf_max=1.0, wer_min=-1.0, wer_max=0.5)
    assert filter_data_dir(d, dec, tmp_path / "kept", keep_perfect).kept == 2
    (dec / "ref").unlink()  # without the decode's references the raw text disagrees in case: all removed
    with pytest.raises(DataDirError, match="kept no utterance"):
        filter_data_dir(d, dec, tmp_path / "kept2", keep_perfect)
