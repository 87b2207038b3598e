"""CmGI end to end (paper 001): a tiny SSL model and a tiny BERT, built here with random weights, saved
and loaded back through the path a user's pretrained models take; trained through the SER task with
the transcript, evaluated on its own CTC hypotheses."""

from pathlib import Path

import pytest
import torch

from conftest import save_tiny_bert, save_tiny_wavlm
from speechser.config import read_yaml


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrained")
    torch.manual_seed(0)
    save_tiny_wavlm(root / "ssl")
    save_tiny_bert(root / "bert", [*"abcdefghijklmnopqrstuvwxyz", "the", "a"])
    return root


def args_for(d: Path, root: Path, interaction: str, seed: int) -> list:
    return ["--data.train_dir", str(d), "--data.valid_dir", str(d), "--data.label_list", str(d / "emotions.txt"),
            "--data.max_frames", "400", "--data.load_audio", "true", "--data.load_text", "true",
            "--model.name", "cmgi_ser", "--model.conf.ssl.name_or_path", str(root / "ssl"),
            "--model.conf.text.name_or_path", str(root / "bert"), "--model.conf.cmgi.dim", "8",
            "--model.conf.cmgi.num_heads", "2", "--model.conf.cmgi.interaction", interaction,
            "--model.conf.embed_dim", "8", "--trainer.max_epochs", "2", "--trainer.keep_nbest", "1",
            "--trainer.average_nbest", "1", "--seed", str(seed)]


def test_cmgi_trains_on_transcripts_and_infers_from_its_own_hypotheses(pretrained, make_feats_dir, tmp_path: Path,
                                                                       train_seed, monkeypatch):
    from speechser.models.cmgi_ser import CmGISER
    from speechser.tasks.ser import infer_ser, load_experiment, load_ser_config, train_ser

    d = make_feats_dir()
    exp = tmp_path / "exp"
    summary = train_ser(load_ser_config(None, args_for(d, pretrained, "cmgi", train_seed)), exp)
    assert summary is not None
    saved = read_yaml(exp / "config.yaml")["model"]
    assert saved["tokens"][:2] == ["<blank>", "<unk>"] and saved["conf"]["asr_weight"] == 0.1
    stats = (exp / "train_stats.tsv").read_text().splitlines()
    assert len(stats) == 3  # header + 2 epochs
    assert {"train_loss_ctc", "train_loss_ser"} <= set(stats[0].split("\t"))  # each term, every epoch
    seen = []
    real = CmGISER.hypotheses

    def spy(self, lp, n):
        out = real(self, lp, n)
        seen.extend(out)
        return out

    monkeypatch.setattr(CmGISER, "hypotheses", spy)
    scores = infer_ser(exp, None, d, tmp_path / "decode")  # eval_text: hypothesis
    assert 0.0 <= scores["ua"] <= 1.0 and len(seen) == 8  # every test utterance went through its hypothesis
    import json

    asr = json.loads((tmp_path / "decode/aux_scores.json").read_text())["text"]  # paper 001: the branch's WER
    assert asr["n"] == 8 and asr["wer"] >= 0 and (tmp_path / "decode/aux_text").is_file()
    ser = load_experiment(exp)
    assert ser.model.ssl.model.feature_extractor.conv_layers[0].conv.weight.requires_grad is False  # CNN frozen
    from speechser.data.ser_dataset import FeatsLabelDataset, collate_feats_labels
    from speechser.text.tokenizer import GraphemeTokenizer

    ds = FeatsLabelDataset(d, ser.labels, load_audio=True, tokenizer=GraphemeTokenizer(saved["tokens"]))
    batch = collate_feats_labels([ds[i] for i in range(4)]).to(next(ser.model.parameters()).device)
    out = ser.model.train()(batch)  # eq. 2: α CTC + (1 − α) CE
    assert torch.isfinite(out["loss_ctc"]) and float(out["loss_ctc"]) > 0
    assert out["loss"].item() == pytest.approx(0.1 * out["loss_ctc"].item() + 0.9 * out["loss_ser"].item(), rel=1e-5)
    assert saved["conf"]["ctc_reduction"] == "token"  # per token, not summed over the transcript


@pytest.mark.parametrize("interaction", ["sa", "ca_gate", "cmgi_pooled"])
def test_table_2_rows_train(pretrained, make_feats_dir, tmp_path: Path, train_seed, interaction):
    from speechser.tasks.ser import load_ser_config, train_ser

    d = make_feats_dir()
    conf = load_ser_config(None, args_for(d, pretrained, interaction, train_seed) + ["--trainer.max_epochs", "1"])
    train_ser(conf, tmp_path / interaction)
    assert (tmp_path / interaction / "valid.ua.ave_1best.pt").is_file()


def test_cmgi_without_transcripts_is_a_clear_error(pretrained, make_feats_dir, tmp_path: Path):
    from speechser.tasks.ser import load_ser_config, train_ser

    d = make_feats_dir()
    args = [a for a in args_for(d, pretrained, "cmgi", 0) if a not in ("--data.load_text",)]
    args.remove("true") if args.count("true") > 1 else None
    with pytest.raises(ValueError, match="load_text"):
        train_ser(load_ser_config(None, args), tmp_path / "bad")


def test_phase_1_trains_the_ssl_model_alone_and_phase_2_freezes_its_cnn(pretrained, make_feats_dir):
    from speechser.data.ser_dataset import FeatsLabelDataset, collate_feats_labels
    from speechser.io.datadir import read_kv
    from speechser.models.registry import build_model
    from speechser.text.tokenizer import GraphemeTokenizer

    d = make_feats_dir()
    tokens = GraphemeTokenizer.build_token_list(read_kv(d / "text").values())
    torch.manual_seed(0)
    model = build_model("cmgi_ser", {
        "ssl": {"name_or_path": str(pretrained / "ssl"), "freeze_feature_extractor": False},
        "text": {"name_or_path": str(pretrained / "bert")}, "cmgi": {"dim": 8, "num_heads": 2}, "embed_dim": 8,
        "stage1_epochs": 1}, input_dim=40, num_classes=2, tokens=tokens).train()
    ds = FeatsLabelDataset(d, ["ang", "neu"], load_audio=True, tokenizer=GraphemeTokenizer(tokens))
    batch = collate_feats_labels([ds[i] for i in range(4)])
    cnn = model.ssl.model.feature_extractor
    model.set_epoch(1)  # phase 1: SER on pooled SSL frames + CTC; no text encoder, no CmGI
    model(batch)["loss"].backward()
    assert model.acoustic_classifier.weight.grad is not None and model.ctc.weight.grad is not None
    assert any(p.grad is not None for p in cnn.parameters())  # the CNN trains in phase 1
    assert all(p.grad is None for p in model.text.parameters()) and model.head.classifier.weight.grad is None
    model.eval()  # validation in phase 1 scores the network inference uses, not the phase-1 classifier
    with torch.no_grad():
        assert torch.allclose(model(batch)["logits"], model.classify(model.embed_batch(batch)))
    model.train()
    model.zero_grad(set_to_none=True)
    model.set_epoch(2)  # phase 2: the CNN frozen, the rest joint
    assert not any(p.requires_grad for p in cnn.parameters()) and not cnn.training
    out = model(batch)
    out["loss"].backward()
    assert all(p.grad is None for p in cnn.parameters()) and model.head.classifier.weight.grad is not None
    assert model.cmgi.proj_l.weight.grad is not None and torch.isfinite(out["loss_ctc"])
