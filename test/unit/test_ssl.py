"""SSL encoders: tiny random models are saved with save_pretrained and loaded back through
the same path a user's pretrained model takes (a local directory)."""

from pathlib import Path

import pytest
import torch

from speechser.nets.ssl import SSLConfig, SSLEncoder

SMALL = dict(hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=32,
             conv_dim=(8, 8), conv_kernel=(10, 3), conv_stride=(5, 2), num_conv_pos_embeddings=16,
             num_conv_pos_embedding_groups=2)


def save_tiny(family: str, root: Path) -> Path:
    import transformers as tf

    torch.manual_seed(0)
    out = root / family
    if family == "whisper":
        conf = tf.WhisperConfig(d_model=16, encoder_layers=3, encoder_attention_heads=2, decoder_layers=1,
                                decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, num_mel_bins=80,
                                vocab_size=100, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                                decoder_start_token_id=1)
        tf.WhisperFeatureExtractor(feature_size=80).save_pretrained(out)
    else:
        cls = {"wav2vec2": tf.Wav2Vec2Config, "hubert": tf.HubertConfig, "wavlm": tf.WavLMConfig,
               "data2vec": tf.Data2VecAudioConfig}[family]
        conf = cls(**SMALL)
        tf.Wav2Vec2FeatureExtractor(do_normalize=family == "data2vec").save_pretrained(out)
    tf.AutoModel.from_config(conf).save_pretrained(out)
    return out


FAMILIES = ["wav2vec2", "hubert", "wavlm", "data2vec", "whisper"]


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ssl")
    return {f: save_tiny(f, root) for f in FAMILIES}


def reference_hidden(path: Path, wav: torch.Tensor, whisper: bool):
    """Hidden states of the full, untruncated model, loaded independently."""
    import transformers as tf

    model = tf.AutoModel.from_pretrained(path).eval()
    if whisper:
        fe = tf.WhisperFeatureExtractor.from_pretrained(path)
        feats = fe([wav[0].numpy()], sampling_rate=16000, return_tensors="pt")["input_features"]
        return model.get_encoder()(feats, output_hidden_states=True).hidden_states
    fe = tf.Wav2Vec2FeatureExtractor.from_pretrained(path)
    x = wav
    if fe.do_normalize:
        x = (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + 1e-7)
    kwargs = {"attention_mask": torch.ones_like(x, dtype=torch.long)} if getattr(model.config, "feat_extract_norm", "layer") == "layer" else {}
    return model(x, output_hidden_states=True, **kwargs).hidden_states


@pytest.mark.parametrize("family", FAMILIES)
def test_layer_choice_matches_the_full_model(tiny_dirs, family):
    wav = torch.randn(1, 8000)
    ref = reference_hidden(tiny_dirs[family], wav, family == "whisper")
    for layer in (0, 1, 3, -1):
        # Whisper: transformers runs the 30-s window; the wrapper's "padded" form must give the same states
        window = {"whisper_window": "padded"} if family == "whisper" else {}
        enc = SSLEncoder(SSLConfig(name_or_path=str(tiny_dirs[family]), layer=layer, **window)).eval()
        feats, flen = enc(wav, torch.tensor([8000]))
        want = ref[layer][:, : int(flen[0])]
        assert feats.shape == (1, int(flen[0]), 16)
        assert torch.allclose(feats, want, atol=1e-5), (family, layer)
    # conv kernels (10, 3), strides (5, 2) in the tiny models; Whisper: 100 mel frames/s, stride 2
    want_frames = 25 if family == "whisper" else ((8000 - 10) // 5 + 1 - 3) // 2 + 1
    assert int(flen[0]) == want_frames


@pytest.mark.parametrize("family", FAMILIES)
def test_batch_shapes_weighted_sum_and_freezing(tiny_dirs, family):
    conf = SSLConfig(name_or_path=str(tiny_dirs[family]), weighted_sum=True, freeze_layers=2)
    enc = SSLEncoder(conf).train()
    wavs = torch.randn(2, 9600)
    lengths = torch.tensor([9600, 4800])
    feats, flen = enc(wavs, lengths)
    assert feats.shape[0] == 2 and feats.shape[2] == enc.output_dim == 16
    assert int(flen[0]) == feats.shape[1] and int(flen[1]) < int(flen[0])
    feats.sum().backward()
    assert enc.layer_weights.grad is not None
    layers = enc.model.layers if family == "whisper" else enc.model.encoder.layers
    assert not any(p.requires_grad for p in layers[0].parameters())
    assert not any(p.requires_grad for p in layers[1].parameters())
    assert all(p.requires_grad for p in layers[2].parameters())
    cnn = [enc.model.conv1] if family == "whisper" else [enc.model.feature_extractor]
    assert not any(p.requires_grad for m in cnn for p in m.parameters())
    frozen = SSLEncoder(SSLConfig(name_or_path=str(tiny_dirs[family]), freeze_all=True))
    assert not any(p.requires_grad for p in frozen.parameters())


def test_padded_batch_matches_transformers_with_its_feature_extractor(tiny_dirs):
    # data2vec-audio: layer-norm feature encoder, so the padding mask is passed; its feature extractor
    # normalizes each waveform over its own (unpadded) samples. The wrapper must do the same.
    import transformers as tf

    path = tiny_dirs["data2vec"]
    enc = SSLEncoder(SSLConfig(name_or_path=str(path), layer=-1)).eval()
    wavs = [torch.randn(4800) * 3 + 1, torch.randn(9600)]
    batch = torch.zeros(2, 9600)
    batch[0, :4800], batch[1] = wavs[0], wavs[1]
    got, flen = enc(batch, torch.tensor([4800, 9600]))
    fe = tf.Wav2Vec2FeatureExtractor.from_pretrained(path)
    inputs = fe([w.numpy() for w in wavs], sampling_rate=16000, padding=True, return_attention_mask=True,
                return_tensors="pt")
    model = tf.AutoModel.from_pretrained(path).eval()
    want = model(inputs["input_values"], attention_mask=inputs["attention_mask"]).last_hidden_state
    n0 = int(flen[0])
    assert torch.allclose(got[0, :n0], want[0, :n0], atol=1e-4)
    assert torch.allclose(got[1], want[1], atol=1e-4)


def test_bad_options_are_named(tiny_dirs):
    with pytest.raises(ValueError, match="not_a_key"):
        SSLEncoder(SSLConfig(name_or_path=str(tiny_dirs["wavlm"]), config_overrides={"not_a_key": 1}))
    with pytest.raises(ValueError, match="outside"):
        SSLEncoder(SSLConfig(name_or_path=str(tiny_dirs["wavlm"]), layer=7))
    with pytest.raises(OSError):
        SSLEncoder(SSLConfig(name_or_path=str(tiny_dirs["wavlm"].parent / "missing_dir")))
