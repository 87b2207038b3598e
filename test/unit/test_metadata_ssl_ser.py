"""The metadata-enhanced SER system on an SSL encoder with ARI (paper 002's setting): stage 2 freezes
exactly the CNN, the input projection and positional embedding, and the first N transformer layers."""

from pathlib import Path

import torch

from conftest import save_tiny_wavlm
from speechser.data.ser_dataset import FeatsLabelDataset, collate_feats_labels
from speechser.io.datadir import read_kv
from speechser.models.registry import build_model


def test_stage_2_freezes_exactly_the_cnn_the_embeddings_and_the_first_layers(make_feats_dir, tmp_path: Path):
    torch.manual_seed(0)
    save_tiny_wavlm(tmp_path / "wavlm", num_hidden_layers=4)
    d = make_feats_dir()
    spk = read_kv(d / "utt2spk")
    (d / "utt2gender").write_text("".join(f"{u} {'f' if s.endswith('A') else 'm'}\n" for u, s in spk.items()))
    model = build_model("metadata_ssl_ser", {
        "ssl": {"name_or_path": str(tmp_path / "wavlm"), "ari": True}, "dim": 8, "embed_dim": 8,
        "aux_weights": {"utt2gender": 1.0}, "aux_hidden": 8, "co_attention_heads": 2, "stage1_epochs": 1,
        "stage2_freeze": 2}, input_dim=40, num_classes=2, aux_classes={"utt2gender": 2}).train()
    ds = FeatsLabelDataset(d, ["ang", "neu"], load_audio=True, aux_labels={"utt2gender": ["f", "m"]})
    batch = collate_feats_labels([ds[i] for i in range(4)])
    wavlm = model.ssl.model
    model.set_epoch(1)  # stage 1: CNN frozen (the config's default), every transformer layer trains
    assert not any(p.requires_grad for p in wavlm.feature_extractor.parameters())
    assert all(p.requires_grad for p in wavlm.encoder.layers.parameters())
    model(batch)["loss"].backward()
    assert model.head.classifier.weight.grad is None and model.ssl.ari.weights.grad is not None
    model.zero_grad(set_to_none=True)
    model.set_epoch(2)  # stage 2
    frozen = [wavlm.feature_extractor, wavlm.feature_projection, wavlm.encoder.pos_conv_embed,
              wavlm.encoder.layer_norm,  # post-LN (base) models: the norm of layer 1's input
              wavlm.encoder.layers[0], wavlm.encoder.layers[1]]
    frozen_ids = {id(p) for m in frozen for p in m.parameters()}
    for name, p in model.named_parameters():
        assert p.requires_grad == (id(p) not in frozen_ids), name
    model(batch)["loss"].backward()
    assert all(p.grad is None for m in frozen for p in m.parameters())
    assert all(p.grad is not None for p in wavlm.encoder.layers[3].parameters() if p.requires_grad)
    assert model.head.classifier.weight.grad is not None and model.aux.co.query.weight.grad is not None
