import pytest
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
        assert "too short for conv2d4 subsampling" in str(err)
    else:
        raise AssertionError("expected a ValueError")


def test_paper_configuration_parameter_count():
    enc = ConformerEncoder(80, ConformerConfig(d_model=512, num_layers=12, num_heads=8, ffn_dim=2048))
    n = sum(p.numel() for p in enc.parameters())
    assert 70e6 < n < 90e6, n


@pytest.mark.parametrize("subsampling, frames", [("conv2d4", [13, 24, 11]), ("dw_striding8", [8, 13, 7]),
                                                  ("conv2d8", [8, 13, 7])])
def test_every_subsampling_is_padding_invariant(subsampling, frames):
    """Odd and even lengths (57, 100, 49) padded to 100 give what each gives alone; the 8x kinds map
    ``n -> ceil(n / 8)`` and leave zeros past each length. The padding holds noise, not zeros, so a
    subsampling stage that read past an utterance's end would show."""
    torch.manual_seed(0)
    enc = small(subsampling=subsampling, subsampling_channels=16).eval()
    lengths = [57, 100, 49]
    batch = torch.randn(3, 100, 40)
    out, lens = enc(batch, torch.tensor(lengths))
    assert lens.tolist() == frames == [enc.output_frames(n) for n in lengths]
    assert out.shape == (3, max(frames), 32) and enc.factor == (4 if subsampling == "conv2d4" else 8)
    for b, (n, f) in enumerate(zip(lengths, frames)):
        alone, _ = enc(batch[b: b + 1, :n], torch.tensor([n]))
        assert torch.allclose(out[b, :f], alone[0], atol=1e-4), (subsampling, n)
        assert (out[b, f:] == 0).all()


def test_dw_striding8_is_depthwise_separable_with_the_published_channels():
    enc = ConformerEncoder(80, ConformerConfig(d_model=144, num_layers=0, subsampling="dw_striding8"))
    first, second, third = enc.subsampling.convs
    assert first.out_channels == 256 and first.stride == (2, 2) and first.groups == 1
    for stage in (second, third):
        depthwise, pointwise = stage
        assert depthwise.groups == 256 and depthwise.kernel_size == (3, 3) and pointwise.kernel_size == (1, 1)
    assert enc.subsampling.out.in_features == 256 * 10  # 80 bins -> 40 -> 20 -> 10
    assert enc.output_frames(1) == 1 and enc.output_frames(0) == 0


def test_limited_context_attention_with_a_global_token():
    """One block, pointwise convolution only: frame 20's output ignores a frame 10 away under a context
    of 4, sees it under full attention, and sees frame 0 when frame 0 is a global token."""
    torch.manual_seed(0)

    def one_block(**kw):
        torch.manual_seed(0)
        return ConformerEncoder(40, ConformerConfig(d_model=32, num_layers=1, num_heads=4, ffn_dim=64, conv_kernel=1,
                                                    dropout=0.0, attention_dropout=0.0, **kw)).eval()

    x = torch.randn(1, 30, 32)
    lens = torch.tensor([30])

    def moved(enc, j):
        y = x.clone()
        y[0, j] = torch.randn(32) * 3  # not a constant shift, which the layer norms would remove
        return not torch.allclose(enc.forward_blocks(x, lens)[0, 20], enc.forward_blocks(y, lens)[0, 20], atol=1e-6)

    full, local, with_global = one_block(), one_block(attention_context=4), one_block(attention_context=4,
                                                                                       global_tokens=1)
    assert moved(full, 10) and moved(full, 0)
    assert moved(local, 17) and not moved(local, 10) and not moved(local, 0)
    assert moved(with_global, 0) and not moved(with_global, 10)
    assert torch.allclose(full.forward_blocks(x, lens), one_block(attention_context=30).forward_blocks(x, lens))
