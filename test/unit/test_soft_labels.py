"""SAILER's training techniques (paper 004): soft labels and their KL loss, annotation dropout, audio
mixing, distribution re-weighting; each by its defining property, then through a training run."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from speechser.data.audio_mix import MinorityMixer, mix_frames, mix_waveforms
from speechser.data.ser_dataset import FeatsLabelDataset, collate_feats_labels
from speechser.data.soft_labels import SoftLabelConfig, annotation_dropout, distribution, read_label_votes
from speechser.io.datadir import DataDirError
from speechser.losses.classification import class_weights_from_counts, soft_label_kl

LABELS = ["ang", "neu", "sad"]


def test_votes_are_read_in_label_order_and_bad_lines_name_file_and_line(tmp_path: Path):
    p = tmp_path / "utt2emo_dist"
    p.write_text("u1 neu:3 ang:1\nu2 sad:0.5 sad:0.5\n")
    votes = read_label_votes(p, LABELS)
    assert votes["u1"].tolist() == [1, 3, 0] and votes["u2"].tolist() == [0, 0, 1]
    assert distribution(votes["u1"]).tolist() == [0.25, 0.75, 0.0]
    for bad, msg in [("u1 hap:1", r"utt2emo_dist:1: unknown label 'hap'"), ("u1 neu", r":1: 'neu' is not label:votes"),
                     ("u1 neu:-1", r":1: votes of 'neu' must be"), ("u1 neu:0", r":1: .* no positive vote"),
                     ("u1 neu:x", r":1: votes 'x'")]:
        p.write_text(bad + "\n")
        with pytest.raises(DataDirError, match=msg):
            read_label_votes(p, LABELS)


def test_the_kl_loss_with_one_hot_targets_is_the_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(6, 3, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 2, 1, 0])
    kl = soft_label_kl(logits, F.one_hot(labels, 3).float())
    assert torch.allclose(kl, F.cross_entropy(logits, labels), atol=1e-6)
    # a distribution: KL = cross-entropy minus the target's entropy, and 0 at the target itself
    d = torch.tensor([[0.5, 0.5, 0.0]])
    assert soft_label_kl(torch.log(d + 1e-20), d).abs() < 1e-6


def test_reweighting_weights_average_to_one_over_the_training_set():
    rng = np.random.default_rng(0)
    dists = rng.dirichlet([5.0, 1.0, 0.3], size=200)
    q = dists.mean(0)
    w = class_weights_from_counts(list(dists.sum(0))).numpy()
    assert np.allclose(w, 1 / (3 * q)) and abs(float((dists @ w).mean()) - 1.0) < 1e-6
    assert w[2] > w[1] > w[0]  # the rarer the class, the heavier


def test_annotation_dropout_drops_only_majority_annotations_about_at_its_rate_and_never_empties():
    rng = np.random.default_rng(0)
    majority = np.array([True, True, False])
    votes = np.array([10.0, 4.5, 2.0])
    draws = np.stack([annotation_dropout(votes, majority, 0.2, rng) for _ in range(2000)])
    assert (draws[:, 2] == 2.0).all() and (draws[:, :2] <= votes[:2]).all()
    kept = draws[:, :2].sum(1).mean() / votes[:2].sum()
    assert abs(kept - 0.8) < 0.02
    only_majority = np.array([1.0, 0.0, 0.0])
    for _ in range(500):  # rate 0.9: most draws would drop the single annotation
        out = annotation_dropout(only_majority, majority, 0.9, rng)
        assert out.sum() > 0


@pytest.mark.parametrize("gap, length", [(3, 15), (0, 12), (-4, 8), (-50, 7)])
def test_mixed_audio_has_the_stated_length(gap, length):
    a, b = np.arange(1, 8, dtype=np.float32), np.full(5, 10, dtype=np.float32)
    out = mix_waveforms(a, b, gap)
    assert len(out) == length
    if gap > 0:
        assert not out[7:10].any() and (out[:7] == a).all() and (out[10:] == b).all()
    if gap == -4:
        assert out.tolist() == [1, 2, 3, 14, 15, 16, 17, 10]


def test_the_mixer_pairs_majority_utterances_with_minority_ones_by_inverse_frequency():
    labels = [0] * 50 + [1] * 30 + [2] * 2 + [3] * 6  # majority: 0, 1
    mixer = MinorityMixer(labels, [0, 1], 4, prob=0.5, max_seconds=2.0, rate=100, seed=0)
    assert np.allclose(mixer.class_prob, [0.75, 0.25])  # 1/2 : 1/6
    picked, mixed = [], 0
    for epoch in range(20):
        mixer.set_epoch(epoch)
        for i in range(len(labels)):
            d = mixer.draw(i, f"u{i}")
            if labels[i] >= 2:
                assert d is None
            elif d is not None:
                mixed += 1
                picked.append(labels[d.partner])
                assert abs(d.gap) <= 200
    assert abs(mixed / (80 * 20) - 0.5) < 0.05
    assert abs(np.mean(np.array(picked) == 2) - 0.75) < 0.05


def write_votes(d: Path) -> None:
    from speechser.io.datadir import read_kv

    emo = read_kv(d / "utt2emo")
    (d / "utt2emo_dist").write_text("".join(f"{k} {v}:3 {'neu' if v == 'ang' else 'ang'}:1\n" for k, v in emo.items()))


def test_a_mixed_training_item_has_the_mixed_length_and_the_averaged_label(make_feats_dir):
    d = make_feats_dir(n_spk=2, n_utt=4, seconds=0.6)
    write_votes(d)
    conf = SoftLabelConfig(file="utt2emo_dist", majority=["ang"], mix_prob=1.0, mix_max_seconds=0.5)
    ds = FeatsLabelDataset(d, ["ang", "neu"], soft_labels=conf, train=True, load_audio=True, seed=1)
    plain = FeatsLabelDataset(d, ["ang", "neu"], soft_labels=SoftLabelConfig(file="utt2emo_dist"), load_audio=True)
    for i, key in enumerate(ds.keys):
        item, ref = ds[i], plain[i]
        if ds.utt2label[key] == 0:  # ang: mixed with a neu utterance (the only minority class)
            draw = ds.mixer.draw(i, key)
            n = 9600 + 9600 + (draw.gap if draw.gap >= 0 else -min(-draw.gap, 9600))
            assert len(item["wav"]) == n
            assert item["feats"].shape[0] == 1 + (n - 400) // 160  # 25 ms frames every 10 ms, of the mixture
            assert np.allclose(item["soft"], (np.array([0.75, 0.25]) + np.array([0.25, 0.75])) / 2)
        else:
            assert np.allclose(item["soft"], ref["soft"]) and len(item["wav"]) == 9600
    batch = collate_feats_labels([ds[i] for i in range(len(ds))])
    assert batch.soft.shape == (len(ds), 2)


def test_training_with_soft_labels_dropout_mixing_and_reweighting_runs(make_feats_dir, tmp_path, train_seed):
    from speechser.tasks.ser import load_ser_config, train_ser

    d = make_feats_dir(n_spk=2, n_utt=4, seconds=0.6)
    write_votes(d)
    conf = load_ser_config(None, [
        "--data.train_dir", str(d), "--data.valid_dir", str(d), "--data.label_list", str(d / "emotions.txt"),
        "--data.soft_labels.file", "utt2emo_dist", "--data.soft_labels.annotation_dropout", "0.2",
        "--data.soft_labels.majority", "[ang]", "--data.soft_labels.mix_prob", "0.5",
        "--data.class_weight_power", "1", "--model.conf.channels", "8", "--model.conf.embed_dim", "8",
        "--trainer.max_epochs", "2", "--seed", str(train_seed)])
    summary = train_ser(conf, tmp_path / "exp")
    assert summary["epochs"] == 2
    assert "valid_min_map" in (tmp_path / "exp" / "train_stats.tsv").read_text().splitlines()[0].split("\t")
    import yaml

    saved = yaml.safe_load((tmp_path / "exp" / "config.yaml").read_text())["data"]["soft_labels"]
    assert saved == {"file": "utt2emo_dist", "annotation_dropout": 0.2, "majority": ["ang"], "mix_prob": 0.5,
                     "mix_max_seconds": 2.0, "mix_cap_seconds": 0.0, "secondary_file": "", "attribute_file": ""}
    with pytest.raises(Exception, match="soft-label file"):
        load_ser_config(None, ["--data.train_dir", "x", "--data.valid_dir", "y", "--data.label_list", "z",
                               "--data.soft_labels.mix_prob", "0.5", "--data.soft_labels.majority", "[ang]"])


def test_minority_map_is_the_mean_average_precision_of_the_minority_classes():
    from speechser.data.ser_dataset import Batch
    from speechser.metrics.classification import ClassificationEvaluator, average_precision

    assert average_precision([0.9, 0.8, 0.7, 0.1], [True, False, True, False]) == pytest.approx((1 + 2 / 3) / 2)
    ev = ClassificationEvaluator(3, minority=[1, 2])
    logits = torch.log(torch.tensor([[0.8, 0.1, 0.1], [0.1, 0.7, 0.2], [0.2, 0.3, 0.5], [0.1, 0.5, 0.4]]))
    def batch(labels):
        return Batch(keys=["u0", "u1", "u2", "u3"], feats=torch.zeros(4, 1, 1), lengths=torch.ones(4),
                     labels=torch.tensor(labels))

    ev.update({"logits": logits, "loss": torch.tensor(1.0)}, batch([0, 1, 2, 2]))
    out = ev.compute()
    # class 1: scores .1 .7 .3 .5, positive u1 -> AP 1; class 2: .1 .2 .5 .4, positives u2, u3 -> AP 1
    assert out["min_map"] == pytest.approx(1.0)
    ev2 = ClassificationEvaluator(3, minority=[1])
    ev2.update({"logits": logits, "loss": torch.tensor(1.0)}, batch([0, 2, 2, 1]))
    # class 1 scores .1 .7 .3 .5 with the positive ranked second -> AP 1/2
    assert ev2.compute()["min_map"] == pytest.approx(0.5)


def test_a_mixture_averages_its_other_targets_and_is_bucketed_at_its_own_length(make_feats_dir):
    """The batch budget counts each epoch's mixture at its mixed length (about, in frames: the filterbank of
    the joined audio loses a frame or two at the edges), not at the longest possible mixture."""
    d = make_feats_dir(n_spk=2, n_utt=4, seconds=0.6)
    write_votes(d)
    from speechser.io.datadir import read_kv

    keys = sorted(read_kv(d / "utt2emo"))
    (d / "utt2avd").write_text("".join(f"{k} {i} {2 * i} 3\n" for i, k in enumerate(keys)))
    (d / "utt2emo2_dist").write_text(f"{keys[0]} neu:1\n")  # partial
    conf = SoftLabelConfig(file="utt2emo_dist", majority=["ang"], mix_prob=1.0, mix_max_seconds=0.5,
                           secondary_file="utt2emo2_dist", attribute_file="utt2avd")
    ds = FeatsLabelDataset(d, ["ang", "neu"], soft_labels=conf, train=True, seed=3)
    plain = FeatsLabelDataset(d, ["ang", "neu"], soft_labels=SoftLabelConfig(file="utt2emo_dist"))
    for i, key in enumerate(ds.keys):
        item = ds[i]
        if ds.utt2label[key] == 0:
            other = ds.keys[ds.mixer.draw(i, key).partner]
            j = ds.keys.index(other)
            assert np.allclose(item["attrs"], [(i + j) / 2, i + j, 3])
            want = [0, 1] if keys[0] in (key, other) else [0, 0]  # the one secondary target, or none
            assert np.allclose(item["soft2"], want)
            counted = ds.epoch_lengths(ds.epoch)[i]
            assert 0 <= counted - item["feats"].shape[0] <= 3
            assert counted < plain.lengths[i] + max(plain.lengths) + 50 or abs(ds.mixer.draw(i, key).gap) == 8000
        else:
            assert ds.epoch_lengths(0)[i] == plain.lengths[i] and np.allclose(item["attrs"], [i, 2 * i, 3])
    assert ds.lengths == plain.lengths  # the unmixed lengths stay as they are


def test_a_mixture_longer_than_the_cap_keeps_its_centre_and_batches_follow_the_epochs(make_feats_dir):
    from speechser.data.sampler import BucketBatchSampler

    d = make_feats_dir(n_spk=2, n_utt=4, seconds=0.6)
    write_votes(d)
    conf = SoftLabelConfig(file="utt2emo_dist", majority=["ang"], mix_prob=1.0, mix_max_seconds=0.5,
                           mix_cap_seconds=0.8)
    ds = FeatsLabelDataset(d, ["ang", "neu"], soft_labels=conf, train=True, load_audio=True, seed=1)
    for i, key in enumerate(ds.keys):
        if ds.utt2label[key] == 0:
            item = ds[i]
            from speechser.data.audio_mix import mixed_length

            n = min(mixed_length(9600, 9600, ds.mixer.draw(i, key).gap), 12800)  # 0.6 s each, the cap 0.8 s
            assert len(item["wav"]) == n and item["feats"].shape[0] == 1 + (n - 400) // 160
            assert ds.epoch_lengths(ds.epoch)[i] >= item["feats"].shape[0]
            assert ds.epoch_lengths(ds.epoch)[i] <= 80 + 2  # the cap in 10-ms frames (and the edges' windows)
    sampler = BucketBatchSampler(ds.lengths, 200, epoch_lengths=ds.epoch_lengths)
    for epoch in (1, 2):
        sampler.set_epoch(epoch)
        lengths = ds.epoch_lengths(epoch)
        assert all(len(b) * max(lengths[i] for i in b) <= 200 for b in sampler)


def test_class_weights_act_in_training_only_and_mixup_reads_the_soft_labels():
    from speechser.models.registry import build_model

    torch.manual_seed(0)
    m = build_model("tdnn_ser", {"channels": 8, "embed_dim": 8, "mixup_alpha": 0.4}, input_dim=10, num_classes=2,
                    class_weights=[0.5, 2.0])
    logits, soft = torch.randn(4, 2), torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5], [1.0, 0.0]])
    m.train()
    assert torch.allclose(m.head.class_loss(logits, None, soft), soft_label_kl(logits, soft * torch.tensor([0.5, 2.0])))
    m.eval()
    assert torch.allclose(m.head.class_loss(logits, None, soft), soft_label_kl(logits, soft))
    assert torch.allclose(m.head.class_loss(logits, torch.tensor([0, 1, 1, 0])),
                          F.cross_entropy(logits, torch.tensor([0, 1, 1, 0]), label_smoothing=m.conf.label_smoothing))
    from speechser.data.ser_dataset import Batch

    batch = Batch(keys=list("abcd"), feats=torch.randn(4, 30, 10), lengths=torch.full((4,), 30),
                  labels=torch.tensor([0, 1, 1, 0]), soft=soft)
    m.train()
    losses = []
    for target in (soft, 1 - soft):
        torch.manual_seed(1)  # the same mixup draw
        losses.append(m(Batch(**{**batch.__dict__, "soft": target}))["loss"])
    assert not torch.allclose(losses[0], losses[1])  # the mixup path trains on the soft labels


@pytest.mark.parametrize("gap, length", [(3, 15), (0, 12), (-4, 8), (-50, 7)])
def test_mixed_states_have_the_stated_length_and_average_where_they_overlap(gap, length):
    a = np.arange(1, 8, dtype=np.float32)[:, None].repeat(2, 1)
    b = np.full((5, 2), 10, dtype=np.float32)
    out = mix_frames(a, b, gap)
    assert out.shape == (length, 2)
    if gap > 0:
        assert not out[7:10].any() and (out[:7] == a).all() and (out[10:] == b).all()
    if gap == -4:
        assert out[:, 0].tolist() == [1, 2, 3, 7, 7.5, 8, 8.5, 10]


def test_a_mixture_of_stored_encoder_states_joins_the_two_utterances_states(make_feats_dir):
    """On stage 3's stored states (an ``.ssl.json`` beside the archive) a mixture is the two utterances'
    states joined with the drawn gap in 20-ms frames; the audio is not read unless the model asks for it."""
    import json

    import kaldiio

    from speechser.io.datadir import read_kv

    d = make_feats_dir(n_spk=2, n_utt=4, seconds=0.6)
    write_votes(d)
    rng = np.random.default_rng(0)
    states = {k: rng.standard_normal((30, 6)).astype(np.float32) for k in read_kv(d / "utt2emo")}
    with kaldiio.WriteHelper(f"ark,scp:{d / 'states.ark'},{d / 'feats.scp'}") as w:
        for k in sorted(states):
            w(k, states[k])
    (d / "utt2num_frames").write_text("".join(f"{k} 30\n" for k in sorted(states)))
    (d / "states.ssl.json").write_text(json.dumps({"model": "m", "layers": [], "level": "frames",
                                                       "window": "utterance", "sample_rate": 16000}))
    for name in ("cmvn.scp", "spk_cmvn.scp"):
        (d / name).unlink(missing_ok=True)
    conf = SoftLabelConfig(file="utt2emo_dist", majority=["ang"], mix_prob=1.0, mix_max_seconds=0.5)
    ds = FeatsLabelDataset(d, ["ang", "neu"], soft_labels=conf, train=True, seed=1)
    assert not hasattr(ds, "mix_audio")
    mixed = 0
    for i, key in enumerate(ds.keys):
        item = ds[i]
        if ds.utt2label[key] != 0:
            assert np.array_equal(item["feats"], states[key])
            continue
        mixed += 1
        draw = ds.mixer.draw(i, key)
        other = ds.keys[draw.partner]
        first, second = (other, key) if draw.partner_first else (key, other)
        gap = int(round(draw.gap / 320))  # samples at 16 kHz -> 20-ms frames
        assert np.array_equal(item["feats"], mix_frames(states[first], states[second], gap))
        assert abs(gap) <= 25
    assert mixed > 0
