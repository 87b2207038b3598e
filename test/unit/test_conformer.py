import torch

from speechser.nets.conformer import ConformerConfig, ConformerEncoder, RelPositionSelfAttention, relative_sinusoids


def small(**kw):
    return ConformerEncoder(40, ConformerConfig(d_model=32, num_layers=2, num_heads=4, ffn_dim=64, conv_kernel=7,
                                                dropout=0.0, attention_dropout=0.0, **kw))


def test_shapes_lengths_and_padding_invariance():
    torch.manual_seed(0)
    enc = small().eval()
    a, b = torch.randn(1, 57, 40), torch.randn(1, 100, 40)
    batch = torch.zeros(2, 100, 40)
    batch[0, :57], batch[1] = a[0], b[0]
    out, lens = enc(batch, torch.tensor([57, 100]))
    assert out.shape == (2, 24, 32) and lens.tolist() == [13, 24]
    alone, _ = enc(a, torch.tensor([57]))
    assert torch.allclose(out[0, :13], alone[0], atol=1e-4)
    assert (out[0, 13:] == 0).all()


def test_relative_scores_depend_on_distance_only_for_identical_frames():
    """Identical frames: the content terms are equal everywhere, so score(i, j) depends on
    i - j alone and the score matrix is constant along its diagonals (Toeplitz)."""
    torch.manual_seed(0)
    att = RelPositionSelfAttention(16, 2, 0.0).eval()
    T = 9
    x = torch.randn(1, 1, 16).expand(1, T, 16)
    q, k, _ = att.qkv(x).view(1, T, 3, 2, 8).unbind(2)
    s = att.scores(q, k, relative_sinusoids(T, 16, x.device, x.dtype))
    assert torch.allclose(s[0, :, 1:, 1:], s[0, :, :-1, :-1], atol=1e-5)
    assert not torch.allclose(s[0, :, 0, 1], s[0, :, 1, 0])  # +1 and -1 differ: positions are signed
    out = att(x, relative_sinusoids(T, 16, x.device, x.dtype), torch.ones(1, T, dtype=torch.bool))
    assert out.shape == (1, T, 16)


def test_too_short_input_is_an_error():
    enc = small()
    try:
        enc(torch.randn(1, 5, 40), torch.tensor([5]))
    except ValueError as err:
        assert "too short for 4x subsampling" in str(err)
    else:
        raise AssertionError("expected a ValueError")


def test_paper_configuration_parameter_count():
    enc = ConformerEncoder(80, ConformerConfig(d_model=512, num_layers=12, num_heads=8, ffn_dim=2048))
    n = sum(p.numel() for p in enc.parameters())
    assert 70e6 < n < 90e6, n
