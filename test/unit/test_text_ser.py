"""The text-only baseline (paper 001's "BERT" row): a tiny BERT with random weights, saved and loaded back
through the path a user's pretrained model takes, trained through the SER task on the transcripts."""

from pathlib import Path

import pytest
import torch

from conftest import save_tiny_bert


def test_text_ser_trains_on_transcripts_and_reads_no_audio(make_feats_dir, tmp_path: Path, train_seed):
    from speechser.config import ConfigError
    from speechser.data.ser_dataset import FeatsLabelDataset, collate_feats_labels
    from speechser.tasks.ser import infer_ser, load_experiment, load_ser_config, train_ser
    from speechser.text.tokenizer import GraphemeTokenizer

    torch.manual_seed(0)
    bert = save_tiny_bert(tmp_path / "bert", [*"abcdefghijklmnopqrstuvwxyz", "the", "a"])
    d = make_feats_dir()
    args = ["--data.train_dir", str(d), "--data.valid_dir", str(d), "--data.label_list", str(d / "emotions.txt"),
            "--data.max_frames", "400", "--model.name", "text_ser", "--model.conf.text.name_or_path", str(bert),
            "--model.conf.embed_dim", "8", "--trainer.max_epochs", "2", "--trainer.keep_nbest", "1",
            "--trainer.average_nbest", "1", "--seed", str(train_seed)]
    with pytest.raises((ConfigError, ValueError), match="load_text"):
        train_ser(load_ser_config(None, args), tmp_path / "no_text")
    exp = tmp_path / "exp"
    train_ser(load_ser_config(None, args + ["--data.load_text", "true"]), exp)
    assert 0.0 <= infer_ser(exp, None, d, tmp_path / "decode")["ua"] <= 1.0
    ser = load_experiment(exp)
    tok = GraphemeTokenizer(ser.conf.model.tokens)
    ds = FeatsLabelDataset(d, ser.labels, tokenizer=tok)
    batch = collate_feats_labels([ds[i] for i in range(3)])
    with torch.no_grad():
        a = ser.model.utterance_outputs(batch)[1]
        batch.feats = torch.randn_like(batch.feats)  # the features are not read
        b = ser.model.utterance_outputs(batch)[1]
        alone = ser.model.utterance_outputs(collate_feats_labels([ds[0]]))[1]
    assert torch.equal(a, b) and torch.allclose(alone[0], a[0], atol=1e-5)  # padding of other texts ignored
