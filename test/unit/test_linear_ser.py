"""linear_ser (issue 14): scikit-learn's logistic regression / linear SVM over utterance features, C chosen
on the validation set, stored as an ordinary checkpoint: its posteriors are scikit-learn's, before and
after saving and loading through the SER task."""

from pathlib import Path

import numpy as np
import pytest
import torch

from speechser.models.registry import build_model


def blobs(n: int, seed: int, dim: int = 6, classes: int = 3):
    rng = np.random.default_rng(seed)
    centers = np.eye(classes, dim) * 3
    y = np.arange(n) % classes
    return centers[y] + rng.normal(size=(n, dim)), y


@pytest.mark.parametrize("classes", [2, 3])
def test_posteriors_are_scikit_learns_and_c_is_chosen_on_validation(classes):
    from sklearn.linear_model import LogisticRegression

    xt, yt = blobs(60, 0, classes=classes)
    xv, yv = blobs(30, 1, classes=classes)
    m = build_model("linear_ser", {"Cs": [0.001, 0.1, 10.0]}, input_dim=6, num_classes=classes)
    info = m.fit(xt, yt, xv, yv)
    best = max(info["grid"], key=lambda g: (g["valid_ua"], -g["C"]))
    assert info["C"] == best["C"] == pytest.approx(float(m.chosen_c))
    mean, std = xt.mean(0), xt.std(0)
    ref = LogisticRegression(C=info["C"], class_weight="balanced", max_iter=5000).fit((xt - mean) / std, yt)
    with torch.no_grad():
        post = torch.softmax(m.classify((torch.from_numpy(xv).float() - m.mean) / m.scale), -1).numpy()
    np.testing.assert_allclose(post, ref.predict_proba((xv - mean) / std), atol=1e-4)


def test_the_svm_keeps_the_decision_functions_argmax():
    from sklearn.svm import LinearSVC

    xt, yt = blobs(60, 0)
    xv, yv = blobs(30, 1)
    m = build_model("linear_ser", {"solver": "linear_svm", "Cs": [0.1]}, input_dim=6, num_classes=3)
    m.fit(xt, yt, xv, yv)
    mean, std = xt.mean(0), xt.std(0)
    ref = LinearSVC(C=0.1, class_weight="balanced", max_iter=5000).fit((xt - mean) / std, yt)
    with torch.no_grad():
        logits = m.classify((torch.from_numpy(xv).float() - m.mean) / m.scale).numpy()
    np.testing.assert_allclose(logits, ref.decision_function((xv - mean) / std), atol=1e-4)


def test_a_missing_training_class_is_an_error():
    xt, yt = blobs(30, 0)
    m = build_model("linear_ser", {}, input_dim=6, num_classes=4)
    with pytest.raises(ValueError, match=r"no utterance of class\(es\) \[3\]"):
        m.fit(xt, yt, xt, yt)


def test_trained_through_the_ser_task_it_saves_loads_and_scores_identically(make_feats_dir, tmp_path: Path):
    from speechser.tasks.ser import collect_ser_outputs, load_experiment, load_ser_config, train_ser

    d = make_feats_dir(n_spk=2, n_utt=6, seconds=0.5)
    conf = load_ser_config(None, ["--data.train_dir", str(d), "--data.valid_dir", str(d), "--data.label_list",
                                  str(d / "emotions.txt"), "--model.name", "linear_ser", "--model.conf.Cs", "[0.01,1]"])
    summary = train_ser(conf, tmp_path / "exp")
    assert summary["epochs"] == 0 and summary["fit"]["C"] in (0.01, 1.0)
    assert (tmp_path / "exp" / "valid.ua.best.pt").is_file() and (tmp_path / "exp" / "linear_fit.json").is_file()
    ser = load_experiment(tmp_path / "exp")
    out = collect_ser_outputs(ser, d)
    x = []
    from speechser.tasks.ser import _dataset

    ds = _dataset(ser.conf.data, str(d), ser.labels, train=False)
    for k in out.keys:
        x.append(ds[ds.keys.index(k)]["feats"].mean(0))
    x = (np.stack(x) - ser.model.mean.numpy()) / ser.model.scale.numpy()
    want = torch.softmax(torch.from_numpy(x).float() @ ser.model.weight.T + ser.model.bias, -1)
    assert torch.allclose(out.post, want, atol=1e-5)
    assert (out.post.argmax(-1) == torch.tensor(out.labels)).float().mean() == 1.0  # tones apart: separable


def test_features_of_another_dimension_at_inference_are_an_error_naming_both(make_feats_dir, tmp_path: Path):
    from speechser.config import ConfigError
    from speechser.features.extract import extract_fbank, write_cmvn
    from speechser.features.fbank import FbankOptions
    from speechser.io.datadir import read_kv
    from speechser.tasks.ser import collect_ser_outputs, load_experiment, load_ser_config, train_ser

    d = make_feats_dir(n_spk=2, n_utt=4, seconds=0.5)
    conf = load_ser_config(None, ["--data.train_dir", str(d), "--data.valid_dir", str(d), "--data.label_list",
                                  str(d / "emotions.txt"), "--model.name", "linear_ser"])
    train_ser(conf, tmp_path / "exp")
    other = make_feats_dir(n_spk=2, n_utt=4, seconds=0.5, name="other")
    extract_fbank(other, other / "raw24", opts=FbankOptions(num_mel_bins=24))  # another front-end: 24 bins
    (other / "feats.scp").write_text((other / "raw24.scp").read_text())
    (other / "utt2num_frames").write_text((other / "raw24.num_frames").read_text())
    write_cmvn(other, per_speaker=True)
    assert read_kv(other / "feats.scp")
    with pytest.raises(ConfigError, match=r"dimension 24, but the model in .* was trained on .* with dimension 40"):
        collect_ser_outputs(load_experiment(tmp_path / "exp"), other)


def test_a_missing_training_class_is_named_by_its_label():
    xt, yt = blobs(30, 0)
    m = build_model("linear_ser", {}, input_dim=6, num_classes=4)
    with pytest.raises(ValueError, match=r"no utterance of class\(es\) \[3\] \(sad\)"):
        m.fit(xt, yt, xt, yt, labels=["ang", "hap", "neu", "sad"])
