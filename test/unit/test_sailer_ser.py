"""SAILER's model (paper 004): SSL -> three pointwise convolutions -> masked mean -> two-layer MLP, the
text branch's layer average concatenated, and the multi-task heads (secondary emotions, attributes);
tiny SSL and text models are built here, saved and loaded back through the from-pretrained path."""

from pathlib import Path

import pytest
import torch
from torch import nn

from conftest import save_tiny_bert, save_tiny_wavlm
from speechser.data.ser_dataset import FeatsLabelDataset, collate_feats_labels
from speechser.data.soft_labels import SoftLabelConfig
from speechser.io.datadir import read_kv
from speechser.losses.classification import soft_label_kl
from speechser.models.registry import build_model


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    root = tmp_path_factory.mktemp("sailer")
    torch.manual_seed(0)
    save_tiny_wavlm(root / "ssl")
    save_tiny_bert(root / "text", [*"abcdefghijklmnopqrstuvwxyz", "hello"], num_hidden_layers=2)
    return root


def tiny(root: Path, **kw) -> dict:
    return {"ssl": {"name_or_path": str(root / "ssl"), "weighted_sum": True}, "conv_dim": 6, "embed_dim": 5,
            "text": {"name_or_path": str(root / "text"), "weighted_sum": True}, **kw}


def targets_dir(make_feats_dir) -> Path:
    d = make_feats_dir(n_spk=2, n_utt=2, seconds=0.6)
    emo = read_kv(d / "utt2emo")
    keys = sorted(emo)
    (d / "utt2emo_dist").write_text("".join(f"{k} {emo[k]}:2 neu:1\n" for k in keys))
    (d / "utt2emo2_dist").write_text("".join(f"{k} ang:1\n" for k in keys[:2]))  # partial, as MSP-Podcast's
    (d / "utt2avd").write_text("".join(f"{k} 4.0 {1 + i} 7.0\n" for i, k in enumerate(keys)))
    return d


def test_the_downstream_is_three_pointwise_convolutions_and_a_two_layer_mlp(pretrained):
    m = build_model("sailer_ser", tiny(pretrained, use_text=True), input_dim=40, num_classes=3)
    convs = [x for x in m.pointwise if isinstance(x, nn.Conv1d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [(16, 6, (1,)), (6, 6, (1,)), (6, 6, (1,))]
    assert m.head.embed[0].in_features == 6 + 12  # speech mean + text mean, concatenated
    assert m.head.classifier.in_features == 5 and m.secondary is None and m.attributes is None
    assert m.text.layer_weights.shape == (3,)  # embeddings + 2 layers, averaged


def test_the_multitask_heads_use_their_targets_and_skip_utterances_without_one(pretrained, make_feats_dir):
    torch.manual_seed(0)
    d = targets_dir(make_feats_dir)
    conf = SoftLabelConfig(file="utt2emo_dist", secondary_file="utt2emo2_dist", attribute_file="utt2avd")
    ds = FeatsLabelDataset(d, ["ang", "neu"], load_audio=True, soft_labels=conf, tokenizer=None)
    batch = collate_feats_labels([ds[i] for i in range(len(ds))])
    assert batch.soft2.sum(-1).tolist() == [1, 1, 0, 0] and batch.attrs[:, 1].tolist() == [1, 2, 3, 4]
    m = build_model("sailer_ser", tiny(pretrained, secondary_weight=0.5, attribute_weight=2.0), input_dim=40,
                    num_classes=2).eval()
    with torch.no_grad():  # eval mode: no dropout, so the pieces can be recomputed
        out = m(batch)
        emb = m.embed_batch(batch)
        main = m.head.loss(m.classify(emb), emb, batch.labels, batch.soft)
        sec = soft_label_kl(m.secondary(emb)[:2], batch.soft2[:2])  # only the two utterances with a target
        att = ((torch.sigmoid(m.attributes(emb)) - (batch.attrs - 1) / 6) ** 2).mean()
    assert torch.allclose(out["loss_secondary"], sec, atol=1e-5) and torch.allclose(out["loss_attributes"], att)
    assert torch.allclose(out["loss"], main + 0.5 * sec + 2.0 * att, atol=1e-5)
    out = m.train()(batch)
    out["loss"].backward()
    assert m.secondary.weight.grad is not None and m.attributes.weight.grad is not None
    assert any(p.grad is not None for p in m.ssl.parameters() if p.requires_grad)
    m.eval()
    with torch.no_grad():
        emb = m.embed_batch(batch)
        pred = m.attribute_predictions(emb)
    assert pred.shape == (4, 3) and ((pred >= 1) & (pred <= 7)).all()


def test_sailer_trains_through_the_ser_task_with_text_soft_labels_and_both_tasks(pretrained, make_feats_dir,
                                                                                 tmp_path, train_seed):
    from speechser.tasks.ser import load_ser_config, train_ser

    d = targets_dir(make_feats_dir)
    conf = load_ser_config(None, [
        "--data.train_dir", str(d), "--data.valid_dir", str(d), "--data.label_list", str(d / "emotions.txt"),
        "--data.load_audio", "true", "--data.load_text", "true", "--data.soft_labels.file", "utt2emo_dist",
        "--data.soft_labels.secondary_file", "utt2emo2_dist", "--data.soft_labels.attribute_file", "utt2avd",
        "--model.name", "sailer_ser", "--model.conf.ssl.name_or_path", str(pretrained / "ssl"),
        "--model.conf.use_text", "true", "--model.conf.text.name_or_path", str(pretrained / "text"),
        "--model.conf.conv_dim", "6", "--model.conf.embed_dim", "5", "--model.conf.secondary_weight", "0.5",
        "--model.conf.attribute_weight", "1.0", "--trainer.max_epochs", "2", "--trainer.best_metric", "macro_f1",
        "--seed", str(train_seed)])
    summary = train_ser(conf, tmp_path / "exp")
    assert summary["epochs"] == 2
