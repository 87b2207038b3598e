"""Early fusion (issue 14): utterance vectors read beside the frames (data.vector_dir, speechser.data.utt_vectors)
and the tdnn_vector_ser model that joins them with the TDNN's pooled frames."""

from pathlib import Path

import kaldiio
import numpy as np
import pytest
import torch

from speechser.config import ConfigError
from speechser.data.ser_dataset import FeatsLabelDataset, collate_feats_labels
from speechser.data.utt_vectors import UttVectors
from speechser.io.datadir import DataDirError, read_kv
from speechser.models.registry import build_model


def write_vectors(d: Path, keys, dim: int, seed: int = 0, rows: int = 1, labels=None) -> Path:
    """A vector directory: ``feats.scp`` of (rows, dim) matrices, ``utt2spk`` and per-speaker ``cmvn.scp``.
    With ``labels`` the vector's first coordinate carries the label (+-2 around its speaker's offset)."""
    from speechser.features.extract import write_cmvn

    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    utt2spk = {k: k.split("-")[0] for k in keys}
    with kaldiio.WriteHelper(f"ark,scp:{d / 'v.ark'},{d / 'feats.scp'}") as w:
        for k in sorted(keys):
            v = rng.normal(size=(rows, dim)).astype(np.float32) + (5.0 if utt2spk[k] == "spkB" else 0.0)
            if labels is not None:
                v[:, 0] += 2.0 if labels[k] == "ang" else -2.0
            w(k, v)
    (d / "utt2spk").write_text("".join(f"{k} {utt2spk[k]}\n" for k in sorted(keys)))
    spk2utt = {}
    for k in sorted(keys):
        spk2utt.setdefault(utt2spk[k], []).append(k)
    (d / "spk2utt").write_text("".join(f"{s} {' '.join(u)}\n" for s, u in sorted(spk2utt.items())))
    write_cmvn(d, per_speaker=True)
    return d


def test_vectors_are_normalized_per_speaker_and_bad_ones_are_named(make_feats_dir, tmp_path):
    feats = make_feats_dir(n_spk=2, n_utt=4)
    keys = list(read_kv(feats / "utt2spk"))
    vec = UttVectors(write_vectors(tmp_path / "vec", keys, 6))
    assert vec.dim == 6
    for spk in ("spkA", "spkB"):  # the speaker offset of spkB is gone: each speaker's vectors have mean 0
        rows = np.stack([vec[k] for k in keys if k.startswith(spk)])
        np.testing.assert_allclose(rows.mean(0), 0, atol=1e-4)
    raw = UttVectors(tmp_path / "vec", cmvn_type="none")
    assert raw[keys[-1]].mean() > 3  # spkB's offset kept
    with pytest.raises(ValueError, match="speaker or none"):
        UttVectors(tmp_path / "vec", cmvn_type="global")
    with pytest.raises(DataDirError, match="feats.scp: no such file .*data.vector_dir"):
        UttVectors(tmp_path / "nowhere")
    with pytest.raises(DataDirError, match=r"not one \(1, F\) row.*functionals"):
        UttVectors(write_vectors(tmp_path / "frames", keys, 6, rows=3))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty/feats.scp").write_text("")
    with pytest.raises(DataDirError, match="feats.scp: no vectors"):
        UttVectors(tmp_path / "empty", cmvn_type="none")
    part = write_vectors(tmp_path / "part", keys[:-1], 6)
    with pytest.raises(DataDirError, match=f"no vector for utterance '{keys[-1]}'"):
        FeatsLabelDataset(feats, ["ang", "neu"], vectors=UttVectors(part))
    ds = FeatsLabelDataset(feats, ["ang", "neu"], vectors=vec)
    batch = collate_feats_labels([ds[i] for i in range(3)])
    assert batch.vectors is not None and batch.vectors.shape == (3, 6)
    np.testing.assert_allclose(batch.vectors[1].numpy(), vec[ds.keys[1]])
    assert batch.to("cpu").vectors is not None


def tiny_model(vector_dim: int, **over):
    conf = {"channels": 16, "embed_dim": 8, "dilations": [1, 2], "vector_dim": vector_dim, "vector_hidden": 8,
            "use_specaug": False, "dropout": 0.0, "vector_input_dropout": 0.0, "vector_dropout": 0.0,
            "label_smoothing": 0.0, **over}
    return build_model("tdnn_vector_ser", conf, input_dim=40, num_classes=2)


def test_the_model_learns_a_label_only_the_vectors_carry(make_feats_dir, tmp_path, train_seed):
    """Every utterance is given the same frames, so only the vectors' first coordinate tells the labels
    apart: the fused model must learn it from the vector branch."""
    torch.manual_seed(train_seed)
    feats = make_feats_dir(n_spk=2, n_utt=4)
    labels = read_kv(feats / "utt2emo")
    vec = UttVectors(write_vectors(tmp_path / "vec", list(labels), 5, seed=train_seed, labels=labels))
    ds = FeatsLabelDataset(feats, ["ang", "neu"], vectors=vec)
    batch = collate_feats_labels([ds[i] for i in range(len(ds))])
    batch.feats = batch.feats[:1].expand_as(batch.feats).contiguous()
    batch.lengths = batch.lengths[:1].expand_as(batch.lengths).contiguous()
    assert set(batch.labels.tolist()) == {0, 1}
    model = tiny_model(5)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    # the stopping loss is the eval-mode one the assertions below read: the TDNN's batch norms give
    # train-mode losses (batch statistics) that can be low before the running statistics have caught up
    target, max_steps = 0.05, 400
    for step in range(max_steps):
        model.eval()
        with torch.no_grad():
            eval_loss = model(batch)["loss"].item()
        if eval_loss < target:
            break
        model.train()
        loss = model(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    else:
        pytest.fail(f"eval-mode loss {eval_loss:.3f} still above {target} after {max_steps} steps")
    with torch.no_grad():
        emb, logits = model.utterance_outputs(batch)
    assert emb.shape == (len(ds), 8) and (logits.argmax(1) == batch.labels).all()
    # the vectors matter: without them the model refuses, with vectors of another width too
    batch.vectors = None
    with pytest.raises(ValueError, match="reads utterance vectors"):
        model(batch)
    batch.vectors = torch.zeros(len(ds), 7)
    with pytest.raises(ValueError, match="width 7, but the model was built for 5"):
        model(batch)
    with pytest.raises(ValueError, match="mixup"):
        tiny_model(5, mixup_alpha=0.2)
    with pytest.raises(ValueError, match="vector_dim"):
        tiny_model(0)


def test_vector_dir_and_vector_models_go_together(make_feats_dir, tmp_path):
    from speechser.tasks.ser import load_ser_config, resolve_model

    feats = make_feats_dir(n_spk=2, n_utt=4)
    vec = write_vectors(tmp_path / "vec", list(read_kv(feats / "utt2spk")), 5)
    base = ["--data.train_dir", str(feats), "--data.valid_dir", str(feats), "--data.label_list",
            str(feats / "emotions.txt")]
    conf = load_ser_config(None, base + ["--model.name", "tdnn_vector_ser", "--data.vector_dir", str(vec)])
    resolve_model(conf)
    assert conf.model.conf["vector_dim"] == 5 and conf.model.input_dim == 40
    with pytest.raises(ConfigError, match="reads no utterance vectors"):
        resolve_model(load_ser_config(None, base + ["--data.vector_dir", str(vec)]))
    with pytest.raises(ConfigError, match="set data.vector_dir"):
        resolve_model(load_ser_config(None, base + ["--model.name", "tdnn_vector_ser"]))
    with pytest.raises(ConfigError, match="vector_dim' is 9, but .* width 5"):
        resolve_model(load_ser_config(None, base + ["--model.name", "tdnn_vector_ser", "--data.vector_dir", str(vec),
                                                    "--model.conf.vector_dim", "9"]))
