"""The Whisper encoder on real weights (Whisper base's encoder from the shared models, as a user's local
model directory): built alone and strictly, float32 from float16, its padded form equal to transformers',
its utterance-length form independent of the batch, long audio windowed rather than truncated."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from speechser.nets.ssl import SSLConfig, SSLEncoder
from speechser.nets.whisper_encoder import WhisperFrames, WhisperLoadError, load_whisper_encoder


@pytest.fixture(scope="module")
def speech(emodb) -> torch.Tensor:
    """Two seconds of Emo-DB speech at 16 kHz ``(S,)``."""
    from speechser.io.audio import read_audio_source, resample

    x, rate = read_audio_source(str(emodb / "wav/03a01Fa.wav"))
    return torch.from_numpy(resample(x, rate, 16000))


@pytest.fixture(scope="module")
def encoder(whisper_base):
    return load_whisper_encoder(str(whisper_base))


def test_the_encoder_is_built_alone_in_float32_from_the_float16_file(whisper_base, encoder):
    from safetensors import safe_open

    enc, conf = encoder
    with safe_open(str(whisper_base / "model.safetensors"), "pt") as f:
        stored = {f.get_tensor(k).dtype for k in f.keys()}
    assert stored == {torch.float16}
    assert all(p.dtype == torch.float32 for p in enc.parameters())
    assert not any("decoder" in k for k in enc.state_dict())
    n = sum(p.numel() for p in enc.parameters())
    assert 19e6 < n < 22e6 and len(enc.layers) == conf.encoder_layers == 6


def test_a_copy_missing_one_encoder_tensor_is_refused_by_name(whisper_base, tmp_path):
    from safetensors.torch import load_file, save_file

    copy = tmp_path / "whisper"
    shutil.copytree(whisper_base, copy)
    state = load_file(str(copy / "model.safetensors"))
    del state["encoder.layers.3.fc2.weight"]
    save_file(state, str(copy / "model.safetensors"))
    with pytest.raises(WhisperLoadError, match=r"'encoder.layers.3.fc2.weight' is missing"):
        load_whisper_encoder(str(copy))
    with pytest.raises(WhisperLoadError, match=r"'encoder.layers.3.fc2.weight' is missing"):
        SSLEncoder(SSLConfig(name_or_path=str(copy)))
    state["encoder.layers.3.fc2.weight"] = torch.zeros(512, 2048, dtype=torch.float16)
    state["encoder.extra.weight"] = torch.zeros(3)
    save_file(state, str(copy / "model.safetensors"))
    with pytest.raises(WhisperLoadError, match=r"'encoder.extra.weight' is not a tensor of the encoder"):
        load_whisper_encoder(str(copy))


def test_the_padded_form_is_transformers_encoder_exactly(encoder, speech):
    import transformers as tf

    enc, conf = encoder
    enc.eval()
    with torch.no_grad():
        got, frames = WhisperFrames(enc, conf, "padded")(speech[None], torch.tensor([len(speech)]))
        mel = tf.WhisperFeatureExtractor()([speech.numpy()], sampling_rate=16000, return_tensors="pt")
        want = enc(mel["input_features"], output_hidden_states=True).hidden_states
    t = int(frames[0])
    assert t == len(speech) // 160 // 2 + (len(speech) // 160) % 2 and len(got) == len(want) == 7
    for g, w in zip(got, want):
        assert torch.equal(g[0], w[0, :t])


def test_the_utterance_form_is_the_same_alone_and_in_a_padded_batch(encoder, speech):
    enc, conf = encoder
    enc.eval()
    run = WhisperFrames(enc, conf, "utterance")
    short = speech[:16000]
    batch = torch.zeros(2, len(speech))
    batch[0], batch[1, :16000] = speech, short
    with torch.no_grad():
        both, frames = run(batch, torch.tensor([len(speech), 16000]))
        alone, _ = run(short[None], torch.tensor([16000]))
        whole, _ = run(speech[None], torch.tensor([len(speech)]))
    assert frames.tolist() == [len(speech) // 320, 50]
    for b, a, w in zip(both, alone, whole):
        scale = float(w.abs().max())
        assert (b[0] - w[0]).abs().max() < 1e-4 * scale  # the longest: float rounding of another batch size
        # the shorter: its last mel frame's STFT window sees zeros, not a reflection, in the batch, which
        # moves its states by a few parts in 10^4 of their norm (2.6e-3 at the last state, measured)
        assert (b[1, :50] - a[0]).norm() < 1e-2 * a[0].norm()


def test_audio_longer_than_30_s_is_encoded_in_windows_not_truncated(encoder, speech):
    enc, conf = encoder
    enc.eval()
    long = speech.repeat(40)[: 16000 * 65]  # 65 s: windows of 30, 30 and 5 s
    run = WhisperFrames(enc, conf, "utterance")
    with torch.no_grad():
        hidden, frames = run(long[None], torch.tensor([len(long)]))
        tail, _ = run(long[None, 16000 * 60:], torch.tensor([16000 * 5]))
    assert int(frames[0]) == hidden[-1].shape[1] == 1500 + 1500 + 250
    assert torch.equal(hidden[-1][0, 3000:], tail[-1][0])
    assert np.isfinite(hidden[-1].numpy()).all()


def test_the_ssl_encoder_runs_whisper_on_its_own_length_by_default(whisper_base, speech):
    enc = SSLEncoder(SSLConfig(name_or_path=str(whisper_base), weighted_sum=True, freeze_all=True)).eval()
    assert enc.conf.whisper_window == "utterance" and enc.num_layers == 6 and enc.output_dim == 512
    with torch.no_grad():
        feats, flen = enc(speech[None], torch.tensor([len(speech)]))
    assert feats.shape == (1, int(flen[0]), 512)
    with pytest.raises(ValueError, match="ssl.whisper_window must be one of utterance, padded"):
        SSLConfig(name_or_path=str(whisper_base), whisper_window="30s")
