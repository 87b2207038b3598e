"""Fusion of SER models with a trained ASR encoder (cross-attention), and the SSL SER model."""

from pathlib import Path

import pytest
import torch
import yaml

from conftest import save_tiny_wavlm
from speechser.config import read_yaml
from speechser.data.ser_dataset import FeatsLabelDataset, collate_feats_labels
from speechser.models.registry import build_model
from speechser.nets.fusion import CrossAttentionFusion
from speechser.tasks.asr import asr_model_section, load_encoder_branch
from speechser.train.checkpoint import load_model_state
from speechser.tasks.ser import infer_ser, load_ser_config, train_ser


@pytest.fixture
def asr_exp(tiny_asr_exp):
    return tiny_asr_exp


def test_asr_branch_matches_the_asr_model_on_extracted_features(asr_exp):
    d, exp = asr_exp
    branch = load_encoder_branch(exp, "valid.acc.ave_1best.pt").train()
    assert not branch.encoder.training and not any(p.requires_grad for p in branch.parameters())
    ds = FeatsLabelDataset(d, ["ang", "neu"], load_audio=True)
    from speechser.data.ser_dataset import read_cmvn

    ds_asr = FeatsLabelDataset(d, ["ang", "neu"], cmvn=read_cmvn(d, "global", d / "cmvn.ark"))
    batch = collate_feats_labels([ds[0], ds[1]])
    ref = collate_feats_labels([ds_asr[0], ds_asr[1]])
    feats, flen = branch.features(batch.wavs, batch.wav_lengths)
    assert torch.equal(flen, ref.lengths)
    assert torch.allclose(feats, ref.feats, atol=1e-3)  # on-the-fly fbank + CMVN == the extracted features
    enc, lens = branch(batch.wavs, batch.wav_lengths)
    want, want_lens = branch.encoder(ref.feats, ref.lengths)
    assert torch.equal(lens, want_lens) and torch.allclose(enc, want, atol=1e-3)
    state = load_model_state(exp / "valid.acc.ave_1best.pt")
    own = branch.encoder.state_dict()
    assert all(torch.equal(own[k[len("encoder."):]], v) for k, v in state.items() if k.startswith("encoder."))


def test_cross_attention_ignores_padded_memory():
    torch.manual_seed(0)
    f = CrossAttentionFusion(8, 6, num_heads=2, dropout=0.0).eval()
    x = torch.randn(1, 5, 8)
    mem = torch.randn(1, 4, 6)
    alone = f(x, mem, torch.ones(1, 4, dtype=torch.bool))
    padded = torch.cat([mem, torch.randn(1, 3, 6) * 100], dim=1)
    mask = torch.tensor([[True] * 4 + [False] * 3])
    assert torch.allclose(f(x, padded, mask), alone, atol=1e-5)


def test_modality_dropout_skips_whole_utterances_in_training_only():
    torch.manual_seed(0)
    fused = CrossAttentionFusion(8, 6, num_heads=2, dropout=0.0)
    f = CrossAttentionFusion(8, 6, num_heads=2, dropout=0.0, modality_dropout=0.5)
    f.load_state_dict(fused.state_dict())
    x, mem = torch.randn(64, 5, 8), torch.randn(64, 4, 6)
    mask = torch.ones(64, 4, dtype=torch.bool)
    want = fused(x, mem, mask)
    out = f.train()(x, mem, mask)
    skipped = torch.tensor([torch.equal(o, xi) for o, xi in zip(out, x)])
    fused_rows = torch.tensor([torch.allclose(o, w, atol=1e-6) for o, w in zip(out, want)])
    assert bool((skipped ^ fused_rows).all())  # each utterance either skipped whole or fused whole
    assert 16 <= int(skipped.sum()) <= 48  # about half of 64 (p = 0.5)
    assert torch.allclose(f.eval()(x, mem, mask), want, atol=1e-6)  # inference always fuses
    with pytest.raises(ValueError, match="modality_dropout"):
        CrossAttentionFusion(8, 6, modality_dropout=1.0)


def test_fusion_trains_infers_and_keeps_asr_frozen(asr_exp, tmp_path: Path, train_seed):
    d, exp = asr_exp
    args = [
        "--data.train_dir", str(d), "--data.valid_dir", str(d), "--data.label_list", str(d / "emotions.txt"),
        "--data.max_frames", "300", "--data.load_audio", "true", "--model.name", "tdnn_asr_fusion",
        "--model.conf.channels", "16", "--model.conf.embed_dim", "8", "--model.conf.fusion_heads", "2",
        "--model.conf.asr_exp_dir", str(exp), "--model.conf.asr_checkpoint", "valid.acc.ave_1best.pt",
        "--model.conf.supcon_weight", "0.5",
        "--trainer.max_epochs", "2", "--trainer.keep_nbest", "1", "--trainer.average_nbest", "1",
        "--seed", str(train_seed),
    ]
    ser_exp = tmp_path / "ser"
    train_ser(load_ser_config(None, args), ser_exp)
    asr_state = load_model_state(exp / "valid.acc.ave_1best.pt")
    ser_state = load_model_state(ser_exp / "valid.ua.ave_1best.pt")
    for k, v in asr_state.items():
        if k.startswith("encoder.") and "running_" not in k and "num_batches" not in k:
            assert torch.equal(ser_state["asr." + k], v), k  # frozen: unchanged by SER training
    scores = infer_ser(ser_exp, ser_exp / "valid.ua.ave_1best.pt", d, tmp_path / "decode")
    assert 0.0 <= scores["ua"] <= 1.0
    # Self-contained: the config records the ASR model, the input size and the labels, and inference
    # gives the same posteriors with the ASR experiment gone.
    saved = read_yaml(ser_exp / "config.yaml")
    assert saved["model"]["conf"]["asr_model"] == asr_model_section(exp)
    assert saved["model"]["input_dim"] == 40 and saved["model"]["labels"] == ["ang", "neu"]
    moved = tmp_path / "asr_moved"
    exp.rename(moved)
    try:
        again = infer_ser(ser_exp, ser_exp / "valid.ua.ave_1best.pt", d, tmp_path / "decode2")
    finally:
        moved.rename(exp)
    assert again == scores
    # A fused experiment from before issue 11 (no asr_model in its config) reads the ASR experiment's instead.
    old = read_yaml(ser_exp / "config.yaml")
    del old["model"]["conf"]["asr_model"]
    (ser_exp / "config.yaml").write_text(yaml.safe_dump(old))
    assert infer_ser(ser_exp, ser_exp / "valid.ua.ave_1best.pt", d, tmp_path / "decode3") == scores
    assert (tmp_path / "decode2/posteriors.tsv").read_text() == (tmp_path / "decode/posteriors.tsv").read_text()
    with pytest.raises(ValueError, match="load_audio"):
        bad = load_ser_config(None, [a for a in args if a not in ("--data.load_audio", "true")])
        train_ser(bad, tmp_path / "bad")


def test_ssl_ser_with_asr_fusion_forward_backward(asr_exp, tmp_path: Path, train_seed):
    d, exp = asr_exp
    torch.manual_seed(train_seed)
    save_tiny_wavlm(tmp_path / "wavlm")
    model = build_model("ssl_ser", {"ssl": {"name_or_path": str(tmp_path / "wavlm"), "weighted_sum": True},
                                    "dim": 8, "embed_dim": 8, "fusion_heads": 2, "supcon_weight": 0.5,
                                    "asr_model": asr_model_section(exp, "valid.acc.ave_1best.pt")},
                        input_dim=40, num_classes=2).train()
    ds = FeatsLabelDataset(d, ["ang", "neu"], load_audio=True)
    batch = collate_feats_labels([ds[i] for i in range(4)])
    out = model(batch)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and out["logits"].shape == (4, 2)
    assert model.ssl.layer_weights.grad is not None and model.fusion.proj.weight.grad is not None
    assert all(p.grad is None for p in model.asr.parameters())


def test_frozen_asr_branch_caches_per_utterance(asr_exp):
    d, exp = asr_exp
    branch = load_encoder_branch(exp, "valid.acc.ave_1best.pt").eval()
    ds = FeatsLabelDataset(d, ["ang", "neu"], load_audio=True)
    b1 = collate_feats_labels([ds[0], ds[1], ds[2]])
    want, want_lens = branch(b1.wavs, b1.wav_lengths)  # no keys: computed
    calls = []
    original = branch.encode
    branch.encode = lambda w, n: calls.append(len(n)) or original(w, n)
    got, lens = branch(b1.wavs, b1.wav_lengths, b1.keys)
    assert calls == [3] and torch.equal(lens, want_lens) and torch.allclose(got, want, atol=1e-5)
    b2 = collate_feats_labels([ds[2], ds[3]])  # one cached, one new, in another batch
    got2, lens2 = branch(b2.wavs, b2.wav_lengths, b2.keys)
    ref2, ref_lens2 = original(b2.wavs, b2.wav_lengths)
    assert calls == [3, 1] and torch.equal(lens2, ref_lens2) and torch.allclose(got2, ref2, atol=1e-5)
    trainable = load_encoder_branch(exp, "valid.acc.ave_1best.pt", freeze=False)
    assert not trainable.use_cache
