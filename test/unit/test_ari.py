"""Augmented Residual Integration (paper 002): with zero weights it is the last layer; it adds the lower
layers' outputs with learned weights; through SSLEncoder it runs on a real (tiny, random) SSL model loaded
from a local directory like a user's pretrained model."""

from pathlib import Path

import pytest
import torch

from conftest import save_tiny_wavlm
from speechser.nets.ari import AugmentedResidualIntegration
from speechser.nets.ssl import SSLConfig, SSLEncoder


def test_ari_with_zero_weights_is_the_last_layer_and_adds_the_lower_layers_when_weighted():
    torch.manual_seed(0)
    hidden = [torch.randn(2, 5, 4) for _ in range(4)]  # h_0 .. h_3 of a 3-layer encoder
    ari = AugmentedResidualIntegration(3)
    assert torch.equal(ari(hidden), hidden[3])
    with torch.no_grad():
        ari.weights.copy_(torch.tensor([0.5, -2.0]))
    assert torch.allclose(ari(hidden), hidden[3] + 0.5 * hidden[1] - 2.0 * hidden[2])  # h_0 is not used
    ari(hidden).sum().backward()
    assert ari.weights.grad is not None and ari.weights.grad.shape == (2,)
    with pytest.raises(ValueError, match="hidden states"):
        ari(hidden[:3])
    per_channel = AugmentedResidualIntegration(3, dim=4)  # the "weighted matrix" reading: (L - 1, D)
    assert per_channel.weights.shape == (2, 4) and torch.equal(per_channel(hidden), hidden[3])
    with torch.no_grad():
        per_channel.weights[0] = torch.tensor([1.0, 0.0, 0.0, 2.0])
    want = hidden[3] + hidden[1] * torch.tensor([1.0, 0.0, 0.0, 2.0])
    assert torch.allclose(per_channel(hidden), want)


def test_ssl_encoder_with_ari(tmp_path: Path):
    import transformers as tf

    torch.manual_seed(0)
    save_tiny_wavlm(tmp_path / "wavlm", num_hidden_layers=3)
    conf = tf.AutoConfig.from_pretrained(tmp_path / "wavlm")
    wav, n = torch.randn(2, 4000), torch.tensor([4000, 3000])
    last = SSLEncoder(SSLConfig(name_or_path=str(tmp_path / "wavlm"), layer=-1)).eval()
    ari = SSLEncoder(SSLConfig(name_or_path=str(tmp_path / "wavlm"), ari=True)).eval()
    assert ari.ari.weights.shape == (2, 16)  # per layer and channel by default
    (a, an), (b, bn) = last(wav, n), ari(wav, n)
    assert torch.equal(an, bn) and torch.allclose(a, b, atol=1e-6)  # zero weights: the last layer
    # LayerDrop (0.1 in this config) would drop hidden states in training and misalign the layers: off
    assert conf.layerdrop > 0 and ari.model.config.layerdrop == 0.0
    ari.train()
    assert ari(wav, n)[0].shape == a.shape
    ari.eval()
    with torch.no_grad():
        ari.ari.weights.fill_(1.0)
    assert not torch.allclose(ari(wav, n)[0], a, atol=1e-3)
    with pytest.raises(ValueError, match="choose one"):
        SSLEncoder(SSLConfig(name_or_path=str(tmp_path / "wavlm"), ari=True, weighted_sum=True))
