"""The VLSP system's SER features: one hidden layer (layer 9 of 12 of wav2vec 2.0 base) instead of a
weighted sum. A tiny random 12-layer model is saved with save_pretrained and loaded back through the
path a user's pretrained model takes (a local directory), from the recipe's own config."""

from pathlib import Path

import pytest
import torch

from speechser.config import read_yaml
from speechser.models.registry import build_model
from speechser.nets.ssl import SSLConfig, SSLEncoder

ROOT = Path(__file__).resolve().parents[2]
# wav2vec 2.0 base's architecture (group-norm CNN, post-layer-norm transformer, 12 layers), tiny widths.
TINY12 = dict(hidden_size=16, num_hidden_layers=12, num_attention_heads=2, intermediate_size=32,
              conv_dim=(8, 8), conv_kernel=(10, 3), conv_stride=(5, 2), num_conv_pos_embeddings=16,
              num_conv_pos_embedding_groups=2)


def save_tiny12(root: Path, family: str) -> Path:
    import transformers as tf

    torch.manual_seed(0)
    out = root / family
    cls = {"wav2vec2": tf.Wav2Vec2Config, "wavlm": tf.WavLMConfig}[family]
    tf.AutoModel.from_config(cls(**TINY12)).save_pretrained(out)
    tf.Wav2Vec2FeatureExtractor(do_normalize=True).save_pretrained(out)  # as facebook/wav2vec2-base's
    return out


@pytest.fixture(scope="module")
def tiny12(tmp_path_factory):
    root = tmp_path_factory.mktemp("ssl12")
    return {f: save_tiny12(root, f) for f in ("wav2vec2", "wavlm")}


def full_hidden_states(path: Path, wav: torch.Tensor):
    """hidden_states of the full 12-layer model, loaded independently, input normalized as its extractor does."""
    import transformers as tf

    model = tf.AutoModel.from_pretrained(path).eval()
    x = (wav - wav.mean()) / torch.sqrt(wav.var(unbiased=False) + 1e-7)
    with torch.no_grad():
        return model(x, output_hidden_states=True).hidden_states


@pytest.mark.parametrize("family", ["wav2vec2", "wavlm"])
def test_layer_9_is_hidden_state_9_and_layers_above_are_dropped(tiny12, family):
    torch.manual_seed(1)
    wav = torch.randn(1, 12000)
    ref = full_hidden_states(tiny12[family], wav)
    assert len(ref) == 13
    enc = SSLEncoder(SSLConfig(name_or_path=str(tiny12[family]), layer=9)).eval()
    assert len(enc.model.encoder.layers) == 9  # layers 10-12 are not run
    with torch.no_grad():
        feats, flen = enc(wav, torch.tensor([12000]))
    assert feats.shape == ref[9].shape and int(flen[0]) == ref[9].shape[1]
    assert torch.allclose(feats, ref[9], atol=1e-6, rtol=0)
    assert not torch.allclose(feats, ref[12], atol=1e-3)  # a different layer would not pass


def test_vlsp_ser_config_uses_wav2vec2_base_layer_9_through_the_model(tiny12):
    conf = read_yaml(ROOT / "egs/vlsp2025/asr_ser1/conf/train_ser.yaml")
    ssl = conf["model"]["conf"]["ssl"]
    assert ssl["name_or_path"] == "facebook/wav2vec2-base" and ssl["layer"] == 9 and ssl["weighted_sum"] is False
    # the same config with the hub name replaced by the tiny local model, built as training builds it
    model_conf = dict(conf["model"]["conf"], ssl=dict(ssl, name_or_path=str(tiny12["wav2vec2"])))
    model = build_model("ssl_ser", model_conf, input_dim=128, num_classes=2).eval()
    assert not hasattr(model.ssl, "layer_weights")
    torch.manual_seed(2)
    wavs = torch.randn(2, 9600)
    with torch.no_grad():
        feats, flen = model.ssl(wavs, torch.tensor([9600, 9600]))
    for b in range(2):
        ref = full_hidden_states(tiny12["wav2vec2"], wavs[b : b + 1])
        assert torch.allclose(feats[b : b + 1], ref[9], atol=1e-5, rtol=0)  # batched vs single: float rounding
