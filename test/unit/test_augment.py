"""On-the-fly waveform augmentation (speechser/data/augment.py) and its wiring into training: noise
lists from real recordings (AN4, Emo-DB), RIR lists of synthetic exponential decays, and the
augmented ASR/SER training features computed on the fly with the precomputed features' front-end."""

from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from speechser.config import ConfigError, from_dict
from speechser.data.augment import (
    AugmentConfig,
    AudioList,
    WaveformAugmentor,
    add_noise,
    pitch_shift,
    reverberate,
)
from speechser.io.audio import read_audio_source, resample

ROOT = Path(__file__).resolve().parents[2]
RATE = 16000


def snr_db(signal: np.ndarray, noise: np.ndarray) -> float:
    s, n = signal.astype(np.float64), noise.astype(np.float64)
    return float(10 * np.log10(np.mean(s * s) / np.mean(n * n)))


def dominant_hz(x: np.ndarray, rate: int = RATE) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)), 1 << 18))
    return float(np.argmax(spec) * rate / (1 << 18))


def sine(hz: float, seconds: float = 1.0, rate: int = RATE) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * hz * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


@pytest.fixture(scope="module")
def speech(emodb) -> np.ndarray:
    """A real utterance at 16 kHz (Emo-DB is stored at 22.05 kHz)."""
    x, rate = read_audio_source(str(emodb / "wav/03a01Nc.wav"))
    return resample(x, rate, RATE)


@pytest.fixture
def noise_scp(tmp_path, an4, emodb) -> Path:
    """Noise recordings from real audio: AN4 speech (16 kHz SPHERE) as babble, an Emo-DB file at
    22.05 kHz (resampled), and one through a pipe command."""
    sph = sorted((an4 / "wav/an4_clstk").glob("*/*.sph"))[:2]
    wav = sorted((emodb / "wav").glob("*.wav"))[-1]
    lines = [f"n1 {sph[0]}", f"n2 {sph[1]}", f"n3 {wav}", f"n4 cat {wav} |"]
    path = tmp_path / "noise.scp"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_rir(path: Path, h: np.ndarray) -> Path:
    soundfile.write(str(path), h.astype(np.float32), RATE, subtype="FLOAT")
    return path


def decay_rir(delay: int = 20, tau_s: float = 0.05, seconds: float = 0.3, seed: int = 0) -> np.ndarray:
    """A synthetic room response: a direct path after ``delay`` samples, then an exponentially
    decaying random tail (time constant ``tau_s``; RT60 = 6.9 tau)."""
    rng = np.random.default_rng(seed)
    n = np.arange(int(seconds * RATE))
    h = 0.3 * rng.standard_normal(n.shape[0]) * np.exp(-n / (tau_s * RATE))
    h[0] = 1.0
    return np.concatenate([np.zeros(delay), h])


@pytest.fixture
def rir_scp(tmp_path) -> Path:
    paths = [write_rir(tmp_path / f"rir{i}.wav", decay_rir(delay=10 * i, tau_s=0.03 + 0.02 * i, seed=i))
             for i in range(3)]
    path = tmp_path / "rir.scp"
    path.write_text("".join(f"r{i} {p}\n" for i, p in enumerate(paths)))
    return path


def augmentor(seed: int = 0, **sections) -> WaveformAugmentor:
    return WaveformAugmentor(AugmentConfig.from_dict(sections), seed=seed)


# --------------------------------------------------------------------------- transforms


def test_snr_on_the_output_is_the_requested_one(speech, noise_scp):
    noises = AudioList(noise_scp, "noise")
    for i, snr in zip(range(len(noises)), (-5.0, 0.0, 7.3, 20.0)):
        n = noises.segment(i, speech.shape[0], RATE, 0.37)
        assert n.shape == speech.shape and np.mean(n**2) > 0
        y = add_noise(speech, n, snr)
        assert abs(snr_db(speech, y - speech) - snr) < 0.1, (i, snr)
    # through the augmentor with the list (a one-point SNR range): y - x is the scaled noise
    aug = augmentor(noise={"prob": 1.0, "noise_scp": str(noise_scp), "snr_db": [4.5, 4.5]})
    for key in ("u1", "u2", "u3"):
        y = aug(speech, RATE, key)
        assert y.shape == speech.shape
        assert abs(snr_db(speech, y - speech) - 4.5) < 0.1


def test_short_noise_is_repeated_and_long_noise_cropped(tmp_path):
    n = write_rir(tmp_path / "short.wav", np.linspace(-1, 1, 100))
    (tmp_path / "n.scp").write_text(f"a {n}\n")
    seg = AudioList(tmp_path / "n.scp", "noise").segment(0, 250, RATE, 0.9)
    assert seg.shape == (250,) and np.allclose(seg[:100], seg[100:200], atol=1e-6)


def test_identity_rir_changes_nothing(speech, tmp_path):
    delta = np.zeros(800)
    delta[0] = 1.0
    assert np.allclose(reverberate(speech, delta), speech, atol=1e-6)
    # a delayed or scaled identity too: normalized, and aligned to its peak
    late = np.zeros(800)
    late[37] = 0.25
    assert np.allclose(reverberate(speech, late), speech, atol=1e-6)
    (tmp_path / "rir.scp").write_text(f"id {write_rir(tmp_path / 'delta.wav', delta)}\n")
    aug = augmentor(reverb={"prob": 1.0, "rir_scp": str(tmp_path / "rir.scp")})
    assert np.allclose(aug(speech, RATE, "u"), speech, atol=1e-6)


def test_reverberation_keeps_length_and_aligns_to_the_direct_path(rir_scp):
    x = np.random.default_rng(0).standard_normal(RATE).astype(np.float32)  # white: xcorr ~ the response
    rirs = AudioList(rir_scp, "RIR")
    for i in range(len(rirs)):
        y = reverberate(x, rirs.full(i, RATE))
        assert y.shape == x.shape and not np.allclose(y, x, atol=1e-2)
        lags = range(-50, 51)
        xc = [float(np.dot(y[max(0, k):RATE + min(0, k)], x[max(0, -k):RATE - max(0, k)])) for k in lags]
        assert list(lags)[int(np.argmax(np.abs(xc)))] == 0
        # unit-energy response: the level of white noise is kept
        assert abs(snr_db(y, x)) < 0.5


@pytest.mark.parametrize("semitones", [2.0, -3.0, 0.5])
def test_pitch_shift_keeps_length_and_moves_the_frequency(semitones):
    x = sine(300.0)
    y = pitch_shift(x, RATE, semitones)
    assert y.shape == x.shape and y.dtype == np.float32
    want = 300.0 * 2 ** (semitones / 12)
    got = dominant_hz(y[2000:-2000])
    assert abs(got / want - 1) < 0.005, (got, want)
    # and the level is about kept (the phase vocoder neither mutes nor doubles)
    assert 0.5 < np.std(y[2000:-2000]) / np.std(x) < 1.5


def test_pitch_shift_of_speech_through_the_augmentor(speech):
    aug = augmentor(pitch={"prob": 1.0, "semitones": [-2.0, 2.0]})
    y = aug(speech, RATE, "u")
    assert y.shape == speech.shape and np.isfinite(y).all() and not np.allclose(y, speech, atol=1e-3)


def test_speed_perturbation_changes_the_length_by_the_factor(speech):
    for f in (0.9, 1.1):
        y = augmentor(speed={"prob": 1.0, "factors": [f]})(speech, RATE, "u")
        assert y.shape[0] == round(speech.shape[0] / f)
    # and the frequencies by the factor (sox speed: tempo and pitch together)
    y = augmentor(speed={"prob": 1.0, "factors": [1.1]})(sine(300.0), RATE, "u")
    assert abs(dominant_hz(y[1000:-1000]) / 330.0 - 1) < 0.005


# --------------------------------------------------------------------------- draws and switches


def all_on(noise_scp: Path, rir_scp: Path, p: float = 1.0) -> dict:
    return {"speed": {"prob": p, "factors": [0.9, 1.0, 1.1]}, "pitch": {"prob": p},
            "reverb": {"prob": p, "rir_scp": str(rir_scp)}, "noise": {"prob": p, "noise_scp": str(noise_scp)}}


def test_same_seed_epoch_and_utterance_give_the_same_output(speech, noise_scp, rir_scp):
    a = augmentor(seed=3, **all_on(noise_scp, rir_scp, 0.7))
    b = augmentor(seed=3, **all_on(noise_scp, rir_scp, 0.7))
    for aug in (a, b):
        aug.set_epoch(2)
    ya, yb = a(speech, RATE, "utt1"), b(speech, RATE, "utt1")
    assert np.array_equal(ya, yb)
    assert np.array_equal(a(speech, RATE, "utt1"), ya)  # no hidden state between calls
    a.set_epoch(3)
    assert not np.array_equal(a(speech, RATE, "utt1"), ya)  # another epoch, another draw
    a.set_epoch(2)
    assert not np.array_equal(a(speech, RATE, "utt2"), ya)  # another utterance, another draw
    other_seed = augmentor(seed=4, **all_on(noise_scp, rir_scp, 0.7))
    other_seed.set_epoch(2)
    assert not np.array_equal(other_seed(speech, RATE, "utt1"), ya)  # another seed, another draw


def test_one_transforms_probability_leaves_the_others_draws_alone(speech, noise_scp, rir_scp):
    c = all_on(noise_scp, rir_scp, 1.0)
    c["speed"]["prob"] = 0.0
    both = augmentor(**c)
    c["pitch"]["prob"] = 0.0
    no_pitch = augmentor(**c)
    # the noise and reverb draws do not depend on whether pitch shift is on: removing the pitch shift
    # from both outputs' inputs is not possible, so compare the draws themselves
    for stage in ("reverb", "noise"):
        assert np.array_equal(both.rng("u", stage).random(4), no_pitch.rng("u", stage).random(4))
    assert not np.array_equal(both.rng("u", "noise").random(4), both.rng("u", "reverb").random(4))


def test_probability_zero_is_the_identity(speech, noise_scp, rir_scp):
    aug = augmentor(**all_on(noise_scp, rir_scp, 0.0))
    assert not aug.enabled
    for epoch in range(3):
        aug.set_epoch(epoch)
        assert np.array_equal(aug(speech, RATE, f"u{epoch}"), speech)


def test_config_keys_and_values_are_checked(noise_scp):
    with pytest.raises(ConfigError, match=r"unknown config key 'augment.noise.snr'"):
        AugmentConfig.from_dict({"noise": {"snr": [0, 5]}})
    with pytest.raises(ConfigError, match=r"unknown config key 'augment.volume'"):
        AugmentConfig.from_dict({"volume": {"prob": 0.5}})
    with pytest.raises(ConfigError, match=r"pitch.prob must be in \[0, 1\]"):
        AugmentConfig.from_dict({"pitch": {"prob": 1.5}})
    with pytest.raises(ConfigError, match=r"noise.snr_db must be a range"):
        AugmentConfig.from_dict({"noise": {"prob": 0.5, "noise_scp": str(noise_scp), "snr_db": [10, 0]}})
    with pytest.raises(ConfigError, match=r"speed.factors"):
        AugmentConfig.from_dict({"speed": {"factors": [0.9, -1]}})
    # a list-based transform switched on without its list is an error, not a silent no-op
    with pytest.raises(ConfigError, match=r"noise.prob > 0 needs noise.noise_scp"):
        AugmentConfig.from_dict({"noise": {"prob": 0.5}})
    with pytest.raises(ConfigError, match=r"reverb.prob > 0 needs reverb.rir_scp"):
        AugmentConfig.from_dict({"reverb": {"prob": 0.5}})
    conf = AugmentConfig.from_dict({"noise": {"prob": 0.5, "noise_scp": "x.scp", "snr_db": [0, 15]}})
    assert conf.enabled and conf.noise.snr_db == [0.0, 15.0] and conf.pitch.prob == 0.0
    with pytest.raises(Exception, match="x.scp: no such file"):
        WaveformAugmentor(conf)


@pytest.mark.parametrize("task", ["asr", "ser", "ser_tdnn"])
def test_vlsp_recipe_configs_follow_the_paper_and_need_their_lists(task, noise_scp, rir_scp):
    from speechser.tasks.asr import load_asr_config
    from speechser.tasks.ser import load_ser_config

    path = ROOT / f"egs/vlsp2025/asr_ser1/conf/train_{task}.yaml"
    load = load_asr_config if task == "asr" else load_ser_config
    required = ["--data.train_dir", "t", "--data.valid_dir", "v", "--data.label_list", "l"][: 4 if task == "asr" else 6]
    with pytest.raises(ConfigError, match=r"needs (noise.noise_scp|reverb.rir_scp)"):
        load(path, required)
    # what the recipe passes: the lists where given, else that transform off
    conf = load(path, required + ["--data.augment.noise.noise_scp", str(noise_scp),
                                  "--data.augment.reverb.prob", "0"])
    a = conf.data.augment
    assert a.speed.prob == 0.0  # not in the paper
    assert a.noise.prob > 0 and a.pitch.prob > 0 and a.reverb.prob == 0.0
    conf = load(path, required + ["--data.augment.noise.prob", "0", "--data.augment.reverb.rir_scp", str(rir_scp)])
    assert conf.data.augment.noise.prob == 0.0 and conf.data.augment.reverb.prob > 0


# --------------------------------------------------------------------------- training data


@pytest.fixture
def feats_dir(make_feats_dir):
    """A data directory with 40-bin fbank extracted offline (feats.scp, utt2num_frames, cmvn.scp)."""
    return make_feats_dir(n_spk=2, n_utt=2, seconds=1.0)


def test_fbank_settings_are_stored_with_the_features(feats_dir):
    from speechser.features.extract import read_fbank_options
    from speechser.features.fbank import FbankOptions

    assert read_fbank_options(feats_dir) == FbankOptions(num_mel_bins=40)


def test_asr_on_the_fly_features_match_the_offline_ones_and_augmentation_changes_them(feats_dir):
    from speechser.data.asr_dataset import FeatsTextDataset
    from speechser.data.ser_dataset import read_cmvn
    from speechser.text.tokenizer import GraphemeTokenizer

    tok = GraphemeTokenizer(GraphemeTokenizer.build_token_list(["hello 0", "hello 1"]))
    cmvn = read_cmvn(feats_dir, "speaker", None)
    offline = FeatsTextDataset(feats_dir, tok, cmvn, unalignable="keep")
    off = FeatsTextDataset(feats_dir, tok, cmvn, unalignable="keep", augment=WaveformAugmentor(AugmentConfig()))
    on = FeatsTextDataset(feats_dir, tok, cmvn, unalignable="keep",
                          augment=augmentor(pitch={"prob": 1.0, "semitones": [2.0, 3.0]}))
    assert offline.augmented is None and off.augmented is not None
    assert on.lengths == offline.lengths and on.keys == offline.keys  # bucketing from utt2num_frames
    for i in range(len(offline)):
        want = offline[i]["feats"]
        got = off[i]["feats"]
        assert got.shape == want.shape and np.abs(got - want).max() < 1e-4
        changed = on[i]["feats"]
        assert changed.shape == want.shape and np.abs(changed - want).mean() > 0.1
        assert on[i]["tokens"] == offline[i]["tokens"]


def test_ser_training_set_augments_wav_and_feats_alike(feats_dir):
    from speechser.data.ser_dataset import FeatsLabelDataset, read_cmvn
    from speechser.features.fbank import compute_fbank

    cmvn = read_cmvn(feats_dir, "speaker", None)
    plain = FeatsLabelDataset(feats_dir, ["ang", "neu"], cmvn=cmvn, load_audio=True)
    off = FeatsLabelDataset(feats_dir, ["ang", "neu"], cmvn=cmvn, load_audio=True,
                            augment=WaveformAugmentor(AugmentConfig()))
    on = FeatsLabelDataset(feats_dir, ["ang", "neu"], cmvn=cmvn, load_audio=True,
                           augment=augmentor(speed={"prob": 1.0, "factors": [0.9]}))
    for i in range(len(plain)):
        assert np.array_equal(off[i]["wav"], plain[i]["wav"])
        assert np.abs(off[i]["feats"] - plain[i]["feats"]).max() < 1e-4
        item = on[i]
        assert item["wav"].shape[0] == round(plain[i]["wav"].shape[0] / 0.9)
        key = item["key"]
        assert np.allclose(item["feats"], cmvn(key, compute_fbank(item["wav"], RATE, off.augmented.opts)), atol=1e-5)


def tiny_asr_conf(feats_dir: Path, augment: dict):
    from speechser.config import load_config
    from speechser.models.registry import model_config_dict
    from speechser.tasks.asr import ASRTrainConfig

    tokens = feats_dir / "tokens.txt"
    from speechser.text.tokenizer import GraphemeTokenizer

    tokens.write_text("\n".join(GraphemeTokenizer.build_token_list(["hello 0", "hello 1"])) + "\n")
    conf = load_config(ASRTrainConfig, None, [
        "--data.train_dir", str(feats_dir), "--data.valid_dir", str(feats_dir), "--data.cmvn_type", "speaker",
        "--data.token_list", str(tokens)])
    conf.data.augment = from_dict(AugmentConfig, augment, "data.augment")
    conf.model.conf = model_config_dict("conformer_transducer", {
        "encoder": {"d_model": 16, "num_layers": 1, "num_heads": 2, "ffn_dim": 32, "conv_kernel": 3},
        "pred_embed_dim": 8, "pred_hidden": 8, "joint_dim": 8})
    return conf


def capture_run(monkeypatch):
    """Replace the trainer's loop: call set_epoch(5) and hand back the loaders' datasets."""
    from speechser.train.trainer import Trainer

    def run(self, train_loader, valid_loader, n, set_epoch=None, stop_after_epoch=None):
        set_epoch(5)
        return {"train": train_loader.dataset, "valid": valid_loader.dataset}

    monkeypatch.setattr(Trainer, "run", run)


def test_asr_training_augments_the_training_set_only(feats_dir, tmp_path, monkeypatch):
    from speechser.tasks.asr import train_asr

    capture_run(monkeypatch)
    out = train_asr(tiny_asr_conf(feats_dir, {"pitch": {"prob": 0.5}}), tmp_path / "exp")
    assert out["train"].augmented is not None and out["train"].augmented.augment.epoch == 5
    assert out["valid"].augmented is None
    out = train_asr(tiny_asr_conf(feats_dir, {}), tmp_path / "exp2")  # no probability > 0: precomputed
    assert out["train"].augmented is None


def test_asr_decoding_is_never_augmented(feats_dir, tmp_path, monkeypatch):
    import speechser.tasks.asr as asr
    from speechser.config import dump_config
    from speechser.models.registry import build_model
    from speechser.text.tokenizer import GraphemeTokenizer

    conf = tiny_asr_conf(feats_dir, {"pitch": {"prob": 1.0}})
    conf.model.input_dim, conf.model.vocab_size = 40, GraphemeTokenizer(conf.data.token_list).vocab_size
    exp = tmp_path / "exp"
    exp.mkdir()
    dump_config(conf, exp / "config.yaml")  # the experiment's config asks for augmentation
    model = build_model("conformer_transducer", conf.model.conf, input_dim=40, vocab_size=conf.model.vocab_size)
    torch.save(model.state_dict(), exp / "model.pt")
    made = []
    real = asr.FeatsTextDataset

    class Recording(real):  # type: ignore[misc, valid-type]
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(asr, "FeatsTextDataset", Recording)
    asr.decode_asr(exp, exp / "model.pt", feats_dir, tmp_path / "decode", device="cpu")
    assert len(made) == 1 and made[0].augmented is None


def test_ser_training_augments_the_training_set_only(feats_dir, tmp_path, monkeypatch):
    from speechser.config import load_config
    from speechser.data.labels import read_label_list
    from speechser.tasks.ser import SERTrainConfig, _dataset, train_ser

    capture_run(monkeypatch)
    conf = load_config(SERTrainConfig, None, [
        "--data.train_dir", str(feats_dir), "--data.valid_dir", str(feats_dir),
        "--data.label_list", str(feats_dir / "emotions.txt"), "--data.augment.pitch.prob", "0.5",
        "--model.conf.channels", "8", "--model.conf.embed_dim", "8"])
    out = train_ser(conf, tmp_path / "exp")
    assert out["train"].augmented is not None and out["train"].augmented.augment.epoch == 5
    assert out["valid"].augmented is None
    # inference, k-NN datastores and scoring build their datasets with train=False: never augmented
    aug = WaveformAugmentor(conf.data.augment)
    labels = read_label_list(conf.data.label_list)
    assert _dataset(conf.data, str(feats_dir), labels, train=False, augment=aug).augmented is None
    assert _dataset(conf.data, str(feats_dir), labels, train=True, augment=aug).augmented is not None
