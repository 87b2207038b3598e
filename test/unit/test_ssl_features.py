"""A frozen encoder as a front-end (real Whisper base weights, a few Emo-DB files): the stored features are
the live encoder's, the settings and the encoder's identity are recorded beside the archive, and a linear
probe chooses its blocks (hidden states) on the validation set."""

from __future__ import annotations

import json
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import torch

from conftest import write_lines
from speechser.io.datadir import DataDirError

KEYS = ["03a01Fa", "03a01Nc", "08a01Ab"]


@pytest.fixture(scope="module")
def three(emodb, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("ssl") / "data"
    d.mkdir()
    write_lines(d / "wav.scp", {k: str(emodb / "wav" / f"{k}.wav") for k in KEYS})
    write_lines(d / "utt2spk", {k: k[:2] for k in KEYS})
    return d


@pytest.mark.parametrize("level", ["functionals", "frames"])
def test_stored_features_are_the_live_encoders(three, whisper_base, tmp_path, level):
    from speechser.features.ssl_feats import SSLFeatureOptions, read_ssl_options
    from speechser.nets.ssl_frontend import extract_ssl
    from speechser.io.audio import AudioReader
    from speechser.nets.ssl import SSLConfig, SSLEncoder

    layers = [1, 2, 3, 4] if level == "functionals" else [3]
    assert extract_ssl(three, tmp_path / "raw", opts=SSLFeatureOptions(str(whisper_base), layers, level)) == 3
    stored = dict(kaldiio.load_scp(str(tmp_path / "raw.scp")))
    enc = SSLEncoder(SSLConfig(name_or_path=str(whisper_base), freeze_all=True)).eval()
    reader = AudioReader(three, target_rate=16000)
    for key in KEYS:
        x, _ = reader[key]
        with torch.no_grad():
            hidden, frames = enc.hidden_states(torch.from_numpy(x)[None], torch.tensor([len(x)]))
        states = [hidden[i][0, : int(frames[0])] for i in layers]
        if level == "functionals":
            want = torch.cat([torch.cat([h.mean(0), h.std(0, unbiased=False)]) for h in states])[None]
        else:
            want = torch.cat(states, 1)
        got = np.asarray(stored[key])
        assert got.shape == tuple(want.shape) and got.shape[-1] == 512 * len(layers) * (2 if level == "functionals" else 1)
        assert np.abs(got - want.numpy()).max() < 1e-4 * float(want.abs().max())
    # the settings and the encoder's identity are recorded, and read back from a data directory
    table = json.loads((tmp_path / "raw.ssl.json").read_text())
    assert table["layers"] == layers and table["level"] == level and table["num_states"] == 7
    sums = dict(ln.split()[::-1] for ln in (whisper_base / "SHA256SUMS").read_text().splitlines())
    assert table["model_identity"]["weights_sha256"] == sums["model.safetensors"]
    write_lines(three / "feats.scp", {k: v for k, v in
                                      (ln.split(maxsplit=1) for ln in (tmp_path / "raw.scp").read_text().splitlines())})
    assert read_ssl_options(three)["layers"] == layers
    (three / "feats.scp").unlink()


def test_features_of_another_encoder_or_other_states_are_refused(three, whisper_base, tmp_path):
    from speechser.features.ssl_feats import SSLFeatureOptions, check_ssl_features
    from speechser.nets.ssl_frontend import extract_ssl

    extract_ssl(three, tmp_path / "a", keys=KEYS[:1], opts=SSLFeatureOptions(str(whisper_base), [3]))
    extract_ssl(three, tmp_path / "b", keys=KEYS[1:2], opts=SSLFeatureOptions(str(whisper_base), [2]))
    d = tmp_path / "mixed"
    d.mkdir()
    scp = (tmp_path / "a.scp").read_text() + (tmp_path / "b.scp").read_text()
    (d / "feats.scp").write_text(scp)
    with pytest.raises(DataDirError, match=r"not all extracted with the same SSL front-end .*states \[3\] .*\[2\]"):
        check_ssl_features(d, str(whisper_base), [3])
    (d / "feats.scp").write_text((tmp_path / "a.scp").read_text())
    check_ssl_features(d, str(whisper_base), [3])
    with pytest.raises(DataDirError, match=r"SSL features of .*whisper-base-encoder \(states \[3\]\), but the "
                                           r"config names .* \(states \[4\]\)"):
        check_ssl_features(d, str(whisper_base), [4])
    with pytest.raises(ValueError, match=r"layers \[9\]: .* has hidden states 0..6"):
        extract_ssl(three, tmp_path / "c", opts=SSLFeatureOptions(str(whisper_base), [9]))


def test_the_probe_chooses_its_blocks_and_c_on_validation_and_zeroes_the_rest():
    from speechser.models.linear_ser import LinearSER, LinearSERConfig

    rng = np.random.default_rng(0)
    n, width = 120, 4
    y = np.arange(n) % 3
    informative = np.eye(3)[y] @ rng.normal(size=(3, width)) * 3 + rng.normal(size=(n, width)) * 0.3
    x = np.concatenate([rng.normal(size=(n, width)), informative, rng.normal(size=(n, width))], axis=1)
    model = LinearSER(LinearSERConfig(Cs=[0.1, 1.0], blocks=3, block_sets=[[0], [1], [0, 2]]), 3 * width, 3)
    info = model.fit(x[:80], y[:80], x[80:], y[80:])
    assert info["blocks"] == [1] and info["valid_ua"] > 0.9
    assert model.column_mask.tolist() == [0.0] * width + [1.0] * width + [0.0] * width
    assert torch.count_nonzero(model.weight[:, :width]) == 0 and torch.count_nonzero(model.weight[:, 2 * width:]) == 0
    # a model fit before block selection existed (no column_mask in its weights) loads with every column used
    state = {k: v for k, v in model.state_dict().items() if k != "column_mask"}
    fresh = LinearSER(LinearSERConfig(blocks=3), 3 * width, 3)
    fresh.load_state_dict(state)
    assert fresh.column_mask.tolist() == [1.0] * 3 * width
    with pytest.raises(ValueError, match=r"block_sets: \[3\] is not a non-empty set of block indices in 0..2"):
        LinearSERConfig(blocks=3, block_sets=[[3]])


@pytest.mark.parametrize("name,extra", [("ssl_ser", {"dim": 32}), ("sailer_ser", {"conv_dim": 32})])
def test_a_head_on_stored_states_gives_the_frozen_live_encoders_outputs(three, whisper_base, tmp_path, name,
                                                                       extra):
    """ssl_ser and sailer_ser with ``ssl.cached`` read stage 3's stored states (every state of the encoder) in
    place of running it: with the same head and layer weights, the same logits as the live frozen encoder on
    the waveforms (Emo-DB's files are all 2.0 s, so the live batch has no padding)."""
    from speechser.data.ser_dataset import Batch
    from speechser.features.ssl_feats import SSLFeatureOptions
    from speechser.io.audio import AudioReader
    from speechser.models.registry import build_model
    from speechser.nets.ssl_frontend import extract_ssl

    extract_ssl(three, tmp_path / "frames", opts=SSLFeatureOptions(str(whisper_base), [], "frames"))
    stored = dict(kaldiio.load_scp(str(tmp_path / "frames.scp")))
    conf = {"ssl": {"name_or_path": str(whisper_base), "weighted_sum": True, "freeze_all": True},
            "embed_dim": 16, **extra}
    torch.manual_seed(0)
    live = build_model(name, conf, input_dim=80, num_classes=4).eval()
    with torch.no_grad():
        live.ssl.layer_weights.normal_()
    cached = build_model(name, {**conf, "ssl": {**conf["ssl"], "cached": True}}, input_dim=7 * 512,
                         num_classes=4).eval()
    assert not any(k.startswith("ssl.model.") for k in cached.state_dict())  # no encoder weights held
    missing, unexpected = cached.load_state_dict(live.state_dict(), strict=False)
    assert not missing and all(k.startswith("ssl.model.") for k in unexpected)
    reader = AudioReader(three, target_rate=16000)
    wavs = torch.stack([torch.from_numpy(reader[k][0]) for k in KEYS])
    feats = torch.stack([torch.from_numpy(np.asarray(stored[k])) for k in KEYS])
    labels = torch.zeros(len(KEYS), dtype=torch.long)
    with torch.no_grad():
        want = live(Batch(KEYS, torch.zeros(3, 1, 80), torch.ones(3, dtype=torch.long), labels, wavs,
                          torch.full((3,), wavs.shape[1])))
        got = cached(Batch(KEYS, feats, torch.full((3,), feats.shape[1]), labels))
    assert (got["logits"] - want["logits"]).abs().max() < 1e-3
    bad = feats[..., : 3 * 512]
    with pytest.raises(ValueError, match=r"stored states of width 1536, but .* has 7 states of 512 \(3584\)"):
        cached(Batch(KEYS, bad, torch.full((3,), feats.shape[1]), labels))


def test_the_top_layers_rerun_on_stored_states_give_the_live_encoders_outputs_and_train(three, whisper_base,
                                                                                        tmp_path):
    """``ssl.train_top_layers: 2`` loads Whisper's last two layers and final norm and re-runs them on stored
    state 4: untouched, the same logits as the live frozen encoder; a shorter utterance gives the same logits
    alone or in a padded batch (its padding masked from attention); those layers get gradients."""
    from speechser.data.ser_dataset import Batch
    from speechser.features.ssl_feats import SSLFeatureOptions
    from speechser.io.audio import AudioReader
    from speechser.models.registry import build_model
    from speechser.nets.ssl_frontend import extract_ssl

    extract_ssl(three, tmp_path / "frames", opts=SSLFeatureOptions(str(whisper_base), [], "frames"))
    stored = dict(kaldiio.load_scp(str(tmp_path / "frames.scp")))
    conf = {"ssl": {"name_or_path": str(whisper_base), "weighted_sum": True, "freeze_all": True}, "dim": 32,
            "embed_dim": 16}
    torch.manual_seed(0)
    live = build_model("ssl_ser", conf, input_dim=80, num_classes=4).eval()
    top = build_model("ssl_ser", {**conf, "ssl": {**conf["ssl"], "cached": True, "train_top_layers": 2}},
                      input_dim=7 * 512, num_classes=4).eval()
    assert {k.split(".")[1] for k in top.state_dict() if k.startswith("ssl.")} == {"layer_weights", "top", "top_norm"}
    missing, _ = top.load_state_dict({k: v for k, v in live.state_dict().items() if not k.startswith("ssl.model.")},
                                     strict=False)
    assert all(k.startswith(("ssl.top.", "ssl.top_norm.")) for k in missing)  # loaded from the model directory
    reader = AudioReader(three, target_rate=16000)
    wavs = torch.stack([torch.from_numpy(reader[k][0]) for k in KEYS])
    feats = torch.stack([torch.from_numpy(np.array(stored[k])) for k in KEYS])
    labels = torch.zeros(len(KEYS), dtype=torch.long)
    full = torch.full((3,), feats.shape[1])
    with torch.no_grad():
        want = live(Batch(KEYS, torch.zeros(3, 1, 80), torch.ones(3, dtype=torch.long), labels, wavs,
                          torch.full((3,), wavs.shape[1])))
        got = top(Batch(KEYS, feats, full, labels))
        assert (got["logits"] - want["logits"]).abs().max() < 1e-3
        alone = top(Batch(KEYS[1:2], feats[1:2, :60], torch.tensor([60]), labels[:1]))
        padded = top(Batch(KEYS, feats, torch.tensor([feats.shape[1], 60, feats.shape[1]]), labels))
    assert (alone["logits"][0] - padded["logits"][1]).abs().max() < 1e-4
    top.train()
    top(Batch(KEYS, feats, full, labels))["loss"].backward()
    assert top.ssl.top[0].fc1.weight.grad is not None and top.ssl.top_norm.weight.grad is not None
