"""The metadata-enhanced SER system on the TDNN (paper 002's auxiliary tasks, co-attention and two-stage
fine-tuning): what each stage trains and freezes, the resolved config, and a resume across the switch."""

from pathlib import Path

import pytest
import torch

from speechser.config import read_yaml
from speechser.data.ser_dataset import FeatsLabelDataset, collate_feats_labels
from speechser.data.labels import UNKNOWN_LABEL
from speechser.io.datadir import read_kv
from speechser.models.registry import build_model

TINY = {"channels": 16, "embed_dim": 8, "dilations": [1, 2, 3], "aux_weights": {"utt2gender": 0.5, "utt2spk": 0.5},
        "aux_hidden": 8, "co_attention_heads": 2, "stage1_epochs": 1, "stage2_freeze": 1, "dropout": 0.0}


def with_gender(d: Path) -> Path:
    spk = read_kv(d / "utt2spk")
    (d / "utt2gender").write_text("".join(f"{u} {'f' if s.endswith('A') else 'm'}\n" for u, s in spk.items()))
    return d


def batch_of(d: Path):
    ds = FeatsLabelDataset(d, ["ang", "neu"], aux_labels={"utt2gender": ["f", "m"], "utt2spk": ["spkA"]})
    return collate_feats_labels([ds[i] for i in range(len(ds))])


def test_stage_1_trains_the_auxiliary_tasks_only_and_stage_2_freezes_the_stem_and_first_blocks(make_feats_dir):
    torch.manual_seed(0)
    batch = batch_of(with_gender(make_feats_dir()))
    assert batch.aux["utt2spk"].tolist().count(UNKNOWN_LABEL) == 4  # spkB is not a known speaker: ignored
    model = build_model("metadata_tdnn_ser", TINY, input_dim=40, num_classes=2,
                        aux_classes={"utt2gender": 2, "utt2spk": 1}).train()
    model.set_epoch(1)
    assert model.stage == 1
    model(batch)["loss"].backward()
    assert model.head.classifier.weight.grad is None  # the SER loss is not in stage 1
    assert model.aux.classifiers["utt2gender"].weight.grad is not None and model.stem[0].weight.grad is not None
    model.zero_grad(set_to_none=True)
    model.set_epoch(2)
    frozen = {id(p) for m in (model.stem, model.blocks[0]) for p in m.parameters()}
    for p in model.parameters():
        assert p.requires_grad == (id(p) not in frozen)
    assert not model.stem.training and not model.blocks[0].training and model.blocks[1].training
    model(batch)["loss"].backward()
    assert model.head.classifier.weight.grad is not None and model.blocks[1].conv1.weight.grad is not None
    assert all(p.grad is None for m in (model.stem, model.blocks[0]) for p in m.parameters())
    assert model.aux.co is not None and model.aux.co.query.weight.grad is not None  # co-attention feeds SER


def test_without_auxiliary_tasks_it_is_the_tdnn(make_feats_dir):
    torch.manual_seed(0)
    plain = build_model("tdnn_ser", {"channels": 16, "embed_dim": 8, "dilations": [1, 2, 3]}, input_dim=40,
                        num_classes=2)
    torch.manual_seed(0)
    meta = build_model("metadata_tdnn_ser", {"channels": 16, "embed_dim": 8, "dilations": [1, 2, 3]},
                       input_dim=40, num_classes=2)
    assert meta.load_state_dict(plain.state_dict(), strict=True) is not None
    batch = batch_of(with_gender(make_feats_dir()))
    plain.eval(), meta.eval()
    assert torch.allclose(plain(batch)["logits"], meta(batch)["logits"])
    with pytest.raises(ValueError, match="stage1_epochs"):
        build_model("metadata_tdnn_ser", {"stage1_epochs": 2}, input_dim=40, num_classes=2)


def test_two_stage_training_records_its_tasks_and_resumes_across_the_switch(make_feats_dir, tmp_path: Path,
                                                                             train_seed):
    from speechser.tasks.ser import infer_ser, load_experiment, load_ser_config, train_ser
    from speechser.train.checkpoint import load_model_state

    d = with_gender(make_feats_dir())
    args = ["--data.train_dir", str(d), "--data.valid_dir", str(d), "--data.label_list", str(d / "emotions.txt"),
            "--data.max_frames", "300", "--model.name", "metadata_tdnn_ser", "--trainer.keep_nbest", "3",
            "--trainer.average_nbest", "1", "--seed", str(train_seed)]
    for k, v in TINY.items():
        args += [f"--model.conf.{k}", str(v).replace("'", "")]
    exp = tmp_path / "exp"
    train_ser(load_ser_config(None, args + ["--trainer.max_epochs", "3"]), exp, stop_after_epoch=2)
    saved = read_yaml(exp / "config.yaml")["model"]
    assert saved["aux_labels"] == {"utt2gender": ["f", "m"], "utt2spk": ["spkA", "spkB"]}
    after2 = load_model_state(exp / "2epoch.pt")
    train_ser(load_ser_config(None, args + ["--trainer.max_epochs", "3"]), exp)  # resumes in stage 2
    after3 = load_model_state(exp / "3epoch.pt")
    for k in after2:
        if k.startswith(("stem.", "blocks.0.")):
            assert torch.equal(after2[k], after3[k]), k  # still frozen after the resume
    assert not torch.equal(after2["blocks.1.conv1.weight"], after3["blocks.1.conv1.weight"])  # the rest trains
    ser = load_experiment(exp, exp / "3epoch.pt")
    assert set(ser.model.aux.names) == {"utt2gender", "utt2spk"}
    assert 0.0 <= infer_ser(exp, exp / "3epoch.pt", d, tmp_path / "decode")["ua"] <= 1.0
    # paper 002's Table III: each auxiliary task's predictions and accuracy in the decode directory
    import json

    aux = json.loads((tmp_path / "decode/aux_scores.json").read_text())
    hyps = read_kv(tmp_path / "decode/aux_utt2gender")
    refs = read_kv(d / "utt2gender")
    assert set(hyps) == set(refs) and set(hyps.values()) <= {"f", "m"}
    assert aux["utt2gender"]["n"] == len(refs)
    assert aux["utt2gender"]["accuracy"] == pytest.approx(sum(hyps[k] == refs[k] for k in refs) / len(refs))
    assert set(aux) == {"utt2gender", "utt2spk"}
    # each loss term every epoch; the SER term starts with stage 2 (an empty cell before, read as NaN)
    import math

    from speechser.metrics.html_report import read_train_stats

    stats = read_train_stats(exp / "train_stats.tsv")
    assert {"train_loss_utt2gender", "train_loss_utt2spk", "train_loss_ser"} <= set(stats)
    assert math.isnan(stats["train_loss_ser"][0]) and not math.isnan(stats["train_loss_ser"][-1])
    from speechser.metrics.decode_dir import aux_summary

    assert aux_summary([tmp_path / "decode"]).startswith("Auxiliary tasks, mean over folds")


def test_the_asr_auxiliary_task_is_ctc_over_the_frames(make_feats_dir, tmp_path: Path, train_seed):
    from speechser.config import ConfigError
    from speechser.tasks.ser import load_experiment, load_ser_config, train_ser
    from speechser.text.tokenizer import GraphemeTokenizer

    d = with_gender(make_feats_dir())
    tokens = GraphemeTokenizer.build_token_list(read_kv(d / "text").values())
    torch.manual_seed(0)
    conf = {**TINY, "aux_weights": {"text": 0.5, "utt2gender": 0.5}, "stage1_epochs": 0}
    model = build_model("metadata_tdnn_ser", conf, input_dim=40, num_classes=2, aux_classes={"utt2gender": 2},
                        tokens=tokens).train()
    ds = FeatsLabelDataset(d, ["ang", "neu"], aux_labels={"utt2gender": ["f", "m"]},
                           tokenizer=GraphemeTokenizer(tokens))
    batch = collate_feats_labels([ds[i] for i in range(4)])
    _, aux_logits, mask = model._embed(batch)
    assert aux_logits["text"].shape[:2] == mask.shape and aux_logits["text"].shape[2] == len(tokens)
    out = model(batch)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and model.aux.classifiers["text"].weight.grad is not None
    args = ["--data.train_dir", str(d), "--data.valid_dir", str(d), "--data.label_list", str(d / "emotions.txt"),
            "--data.max_frames", "300", "--model.name", "metadata_tdnn_ser", "--model.conf.channels", "16",
            "--model.conf.embed_dim", "8", "--model.conf.aux_weights", "{text: 0.5}", "--model.conf.aux_hidden", "8",
            "--model.conf.co_attention_heads", "2", "--trainer.max_epochs", "1", "--trainer.keep_nbest", "1",
            "--trainer.average_nbest", "1", "--seed", str(train_seed)]
    with pytest.raises(ConfigError, match="load_text"):
        train_ser(load_ser_config(None, args), tmp_path / "no_text")
    train_ser(load_ser_config(None, args + ["--data.load_text", "true"]), tmp_path / "exp")
    assert load_experiment(tmp_path / "exp").model.aux.names == ["text"]
    import json

    from speechser.tasks.ser import infer_ser

    infer_ser(tmp_path / "exp", None, d, tmp_path / "decode")  # the auxiliary recognizer's CER and WER
    scores = json.loads((tmp_path / "decode/aux_scores.json").read_text())["text"]
    assert scores["n"] == len(read_kv(d / "text")) and scores["wer"] >= 0 and scores["cer"] >= 0
    lines = (tmp_path / "decode/aux_text").read_text().splitlines()  # an empty hypothesis is the key alone
    assert {line.split(" ", 1)[0] for line in lines} == set(read_kv(d / "text"))
