"""CSQ's composition (paper 003, sec. 2.3, eqs. 4-6, Fig. 2; :mod:`speechser.nets.csq`), pinned numerically.

What is pinned, each against the code's documented reading of the paper:

- the grouping ("S", Group = ``len(dilations)``): ``X_l`` and the matched ``X_h`` are cut into contiguous channel
  groups of ``g = C_l / Group``; group ``i`` goes to branch ``i`` only, whose 3 x 3 convolution has dilation
  ``d_i`` (7, 5, 2, 1 in order), ``padding = d_i`` (same size), ``groups = 1``, ``2g + 1`` channels in and out
  (the docstring's reading; the paper's ``Group/2 + 1`` holds only for ``C_l = Group``), shown both on the
  modules' attributes and by a receptive-field probe of the whole module;
- eq. 4: ``ϖ^i = Concat(X_l^i, X_h^i, Q)`` in that channel order, with ``X_h`` brought to ``X_l``'s size by a
  1 x 1 convolution ("C") then bilinear interpolation ("B"); the query is one extra channel of *every* group;
- the query token: built with ``use_query=False`` the module has no query channel and refuses a query (it does
  not silently ignore one; the code's documented contract); built with it, a different query gives a different
  output, and zeroing the query channel's weights gives exactly the query-free module;
- eq. 6 with ``f_j = [x_j, x_{j+1}]`` (:mod:`speechser.models.pcq_ser`): module ``j`` takes the MLCNN's maps
  ``x_j`` (lower, sets the output grid) and ``x_{j+1}`` (upper), and ``Q_j`` pooled to ``x_j``'s size; both maps
  influence the output.

The probes run in eval mode: there batch norm is a per-channel affine map, so it mixes neither positions nor
channels (in training mode its batch statistics would make every output depend on every input).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from speechser.nets.csq import ChannelSemanticQuery

C_LOW, C_HIGH, S = 8, 12, 17  # g = 2 channels per group with four groups; a 17 x 17 low map, centre 8
DILATIONS = (7, 5, 2, 1)


def make(use_query: bool = True, dilations=DILATIONS, c_low: int = C_LOW, seed: int = 0) -> ChannelSemanticQuery:
    torch.manual_seed(seed)
    return ChannelSemanticQuery(c_low, C_HIGH, dilations, use_query=use_query).eval()


def inputs(n: int = 2, c_low: int = C_LOW, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, c_low, S, S, generator=g), torch.randn(n, C_HIGH, 9, 9, generator=g),
            torch.randn(n, 1, S, S, generator=g))


def record_branches(csq: ChannelSemanticQuery):
    """Each branch's input ``ϖ^i`` and output ``η^i``."""
    ins, outs = {}, {}
    for i, b in enumerate(csq.branches):
        b.register_forward_pre_hook(lambda mod, args, i=i: ins.__setitem__(i, args[0].detach().clone()))
        b.register_forward_hook(lambda mod, args, out, i=i: outs.__setitem__(i, out.detach().clone()))
    return ins, outs


@pytest.mark.parametrize("dilations", [DILATIONS, (3, 1)])
@pytest.mark.parametrize("use_query", [True, False])
def test_each_channel_group_has_a_3x3_convolution_with_its_dilation_over_2g_plus_query_channels(dilations,
                                                                                                 use_query):
    csq = make(use_query, dilations)
    G = len(dilations)
    g = C_LOW // G
    width = 2 * g + (1 if use_query else 0)
    assert csq.groups == G and len(csq.branches) == G
    for d, branch in zip(dilations, csq.branches):
        conv = branch[0]
        assert isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3)
        assert conv.dilation == (d, d) and conv.padding == (d, d) and conv.stride == (1, 1)
        assert conv.groups == 1 and conv.in_channels == conv.out_channels == width
        assert isinstance(branch[1], nn.BatchNorm2d) and branch[1].num_features == width
        assert isinstance(branch[2], nn.ReLU)
    assert csq.match.kernel_size == (1, 1) and (csq.match.in_channels, csq.match.out_channels) == (C_HIGH, C_LOW)
    out = csq.out[0]
    assert out.kernel_size == (1, 1) and (out.in_channels, out.out_channels) == (G * width, C_LOW)


def test_each_branch_reads_its_own_channel_group_of_the_low_map_and_of_the_matched_high_map_then_the_query():
    """Eq. 4 ``ϖ^i = Concat(X_l^i, X_h^i, Q)``, with ``X_h`` = bilinear(Conv1x1(``X_h``)) to ``(H_l, W_l)``
    (Fig. 2's "C" then "B"), groups contiguous and in order."""
    csq = make()
    ins, _ = record_branches(csq)
    lo, hi, q = inputs()
    with torch.no_grad():
        csq(lo, hi, q)
        high = F.interpolate(csq.match(hi), size=(S, S), mode="bilinear", align_corners=False)
    g = C_LOW // 4
    for i in range(4):
        want = torch.cat([lo[:, i * g:(i + 1) * g], high[:, i * g:(i + 1) * g], q], dim=1)
        assert ins[i].shape == (2, 2 * g + 1, S, S)
        assert torch.allclose(ins[i], want, atol=1e-6), i


def test_perturbing_one_channel_group_of_either_map_changes_only_that_groups_branch():
    csq = make()
    _, outs = record_branches(csq)
    lo, hi, q = inputs()
    g = C_LOW // 4
    with torch.no_grad():
        for i in range(4):
            csq(lo, hi, q)
            base = dict(outs)
            lo2 = lo.clone()
            lo2[:, i * g:(i + 1) * g] += torch.randn(2, g, S, S)
            csq(lo2, hi, q)
            assert [j for j in range(4) if not torch.equal(outs[j], base[j])] == [i], i
            # the matched high map, changed within group i's channels alone (through the 1 x 1 conv's bias,
            # which adds a constant to those output channels only, and bilinear resizing keeps constants)
            csq.match.bias[i * g:(i + 1) * g] += 1.0
            csq(lo, hi, q)
            csq.match.bias[i * g:(i + 1) * g] -= 1.0
            assert [j for j in range(4) if not torch.equal(outs[j], base[j])] == [i], i


def grad_pattern(csq: ChannelSemanticQuery, lo, hi, q, centre: int = S // 2):
    """The inputs that the output at one position (all channels, all samples) depends on: nonzero gradients of
    ``z[:, :, centre, centre].sum()`` w.r.t. ``X_l`` (per channel) and ``Q``, as sets of (row, col)."""
    lo, q = lo.clone().requires_grad_(True), q.clone().requires_grad_(True)
    hi = hi.clone().requires_grad_(True)
    csq(lo, hi, q)[:, :, centre, centre].sum().backward()

    def where(gr: torch.Tensor) -> set:  # gr (N, H, W) -> positions with a nonzero gradient in any sample
        return {tuple(p) for p in (gr.abs().sum(0) > 0).nonzero().tolist()}

    return [where(lo.grad[:, k]) for k in range(lo.shape[1])], where(q.grad[:, 0]), hi.grad


def dilated_taps(d: int, centre: int = S // 2) -> set:
    return {(centre + d * a, centre + d * b) for a in (-1, 0, 1) for b in (-1, 0, 1)}


def test_receptive_field_each_low_channel_reaches_the_output_through_exactly_its_groups_dilated_3x3_taps():
    """Receptive-field probe of the whole module by its gradient (the final 1 x 1 convolution adds no reach): the output
    at the centre depends on channel ``k`` of ``X_l`` at exactly the 9 taps ``centre + d_i * {-1, 0, 1}^2`` of
    group ``i = k // g``'s dilation (7 for the first group, then 5, 2, 1), and on nothing else of it."""
    csq = make()
    lo, hi, q = inputs(n=4)
    per_channel, _, _ = grad_pattern(csq, lo, hi, q)
    g = C_LOW // 4
    for k, taps in enumerate(per_channel):
        assert taps == dilated_taps(DILATIONS[k // g]), (k, sorted(taps))


def test_impulse_in_one_low_channel_moves_the_output_at_exactly_its_groups_dilated_taps():
    """The same by an impulse: adding a spike at the centre of channel ``k`` of ``X_l`` (on a random background)
    changes the output at exactly the 9 positions ``centre + d_i * {-1, 0, 1}^2`` of group ``i = k // g``."""
    csq = make()
    lo, hi, q = inputs(n=4)
    g = C_LOW // 4
    with torch.no_grad():
        base = csq(lo, hi, q)
        for k in range(C_LOW):
            moved = set()
            for spike in (5.0, -5.0):  # both signs, so that the ReLUs let every tap through in some sample
                lo2 = lo.clone()
                lo2[:, k, S // 2, S // 2] += spike
                diff = (csq(lo2, hi, q) - base).abs().sum(dim=(0, 1))  # (H, W)
                moved |= {tuple(p) for p in (diff > 0).nonzero().tolist()}
            assert moved == dilated_taps(DILATIONS[k // g]), (k, sorted(moved))


def test_receptive_field_the_query_reaches_the_output_through_every_groups_taps():
    """``Q`` is concatenated into every ``ϖ^i`` (eq. 4), so its taps are the union over the four dilations."""
    csq = make()
    lo, hi, q = inputs(n=4)
    _, q_taps, hi_grad = grad_pattern(csq, lo, hi, q)
    assert q_taps == set().union(*(dilated_taps(d) for d in DILATIONS))
    assert hi_grad.abs().sum() > 0  # the high map reaches the output too (through "C", "B" and every branch)


def test_receptive_field_probe_follows_the_configured_dilations():
    csq = make(dilations=(3, 1))  # two groups of four channels
    lo, hi, q = inputs(n=4)
    per_channel, q_taps, _ = grad_pattern(csq, lo, hi, q)
    assert [t == dilated_taps(3) for t in per_channel] == [True] * 4 + [False] * 4
    assert [t == dilated_taps(1) for t in per_channel] == [False] * 4 + [True] * 4
    assert q_taps == dilated_taps(3) | dilated_taps(1)


def test_without_a_query_token_the_module_has_no_query_channel_and_refuses_a_query():
    """``use_query=False`` (PCQ without the SSL branch): ``ϖ^i = Concat(X_l^i, X_h^i)``; the code's contract is to
    refuse a query it was not built for (rather than to ignore it), and the with-query module needs one."""
    csq = make(use_query=False)
    ins, _ = record_branches(csq)
    lo, hi, q = inputs()
    with torch.no_grad():
        out = csq(lo, hi)
    assert out.shape == (2, C_LOW, S, S) and all(x.shape[1] == 2 * (C_LOW // 4) for x in ins.values())
    with pytest.raises(ValueError, match="without a query"):
        csq(lo, hi, q)
    with pytest.raises(ValueError, match="with a query"):
        make()(lo, hi)


def embed_without_query(dst: ChannelSemanticQuery, src: ChannelSemanticQuery) -> None:
    """Copy the query-free ``src`` into ``dst`` (built with a query) with every weight that reads the query
    channel (input index ``2g`` of each branch) or the extra ``η`` channel (its output index ``2g``) zeroed."""
    w = 2 * (C_LOW // 4)
    with torch.no_grad():
        dst.match.load_state_dict(src.match.state_dict())
        for bd, bs in zip(dst.branches, src.branches):
            bd[0].weight.zero_()
            bd[0].weight[:w, :w] = bs[0].weight
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(bd[1], name)[:w] = getattr(bs[1], name)
        dst.out[0].weight.zero_()
        for i in range(4):
            dst.out[0].weight[:, i * (w + 1):i * (w + 1) + w] = src.out[0].weight[:, i * w:(i + 1) * w]
        dst.out[1].load_state_dict(src.out[1].state_dict())


def test_the_query_is_exactly_one_extra_channel_of_each_group_after_the_low_and_high_channels():
    """With the weights that read input channel ``2g`` of each branch zeroed, the with-query module is the
    query-free one whatever the query; giving one branch's query weights back makes the output depend on the
    query through that branch only."""
    lo, hi, q = inputs()
    plain, with_q = make(use_query=False), make(seed=3)
    embed_without_query(with_q, plain)
    _, outs = record_branches(with_q)
    with torch.no_grad():
        want = plain(lo, hi)
        for query in (q, 10 * torch.randn_like(q)):
            assert torch.allclose(with_q(lo, hi, query), want, atol=1e-5)
        with_q.branches[2][0].weight[:4, 4] = 1.0  # branch 2 now reads the query channel into its first η's
        a = with_q(lo, hi, q)
        eta_a = dict(outs)
        b = with_q(lo, hi, q + 1.0)
    assert (a - b).abs().max() > 1e-3
    assert [i for i in range(4) if not torch.equal(outs[i], eta_a[i])] == [2]


def test_a_different_query_changes_every_groups_output_and_the_module_output():
    csq = make()
    _, outs = record_branches(csq)
    lo, hi, q = inputs()
    with torch.no_grad():
        a = csq(lo, hi, q)
        eta = dict(outs)
        b = csq(lo, hi, torch.randn_like(q))
    assert all((outs[i] - eta[i]).abs().max() > 1e-4 for i in range(4))
    assert (a - b).abs().max() > 1e-4


@pytest.mark.parametrize("high_size", [(9, 9), (5, 12), (17, 17)])
def test_the_output_is_on_the_low_maps_grid_and_both_maps_change_it(high_size):
    """``f_j = [x_j, x_{j+1}]``: the lower map sets the output's size and channels; the upper map, whatever its
    size, is resized onto it; a change of either map changes the output."""
    csq = make()
    lo, _, q = inputs()
    hi = torch.randn(2, C_HIGH, *high_size)
    with torch.no_grad():
        out = csq(lo, hi, q)
        assert out.shape == (2, C_LOW, S, S)
        assert (csq(lo + torch.randn_like(lo), hi, q) - out).abs().max() > 1e-4
        assert (csq(lo, hi + torch.randn_like(hi), q) - out).abs().max() > 1e-4


def test_the_high_map_is_matched_pointwise_and_resized_bilinearly():
    """"C" then "B": the module's output is a function of ``bilinear(Conv1x1(X_h))`` alone. Two different high
    maps with the same matched-and-resized image (one of them already at ``X_l``'s size, fed through a module
    whose bilinear step is then the identity) give the same output."""
    csq = make()
    lo, hi, q = inputs()
    with torch.no_grad():
        # the 1 x 1 convolution commutes with the (convex) bilinear weights: resizing X_h first must not matter
        hi_up = F.interpolate(hi, size=(S, S), mode="bilinear", align_corners=False)
        assert torch.allclose(csq(lo, hi, q), csq(lo, hi_up, q), atol=1e-5)
        # but nearest-neighbour resizing is a different image: the module does use bilinear interpolation
        hi_nn = F.interpolate(hi, size=(S, S), mode="nearest")
        assert (csq(lo, hi, q) - csq(lo, hi_nn, q)).abs().max() > 1e-4


@pytest.fixture(scope="module")
def tiny_wavlm(tmp_path_factory):
    from conftest import save_tiny_wavlm

    torch.manual_seed(0)
    return save_tiny_wavlm(tmp_path_factory.mktemp("csq") / "wavlm", num_hidden_layers=1)


def test_pcq_feeds_csq_j_the_maps_x_j_and_x_j_plus_1_and_the_query_pooled_to_x_j(tiny_wavlm):
    """Eq. 6 ``z_j = CSQ(f_j, Q_j)`` with ``f_j = [x_j, x_{j+1}]`` as :mod:`speechser.models.pcq_ser` documents:
    module ``j`` gets the MLCNN's ``x_j`` and ``x_{j+1}`` (the same tensors), and ``Q_1`` is the SSL output
    pooled to ``x_1``'s size, ``Q_j`` (j > 1) ``Q_{j-1}`` pooled to ``x_j``'s size."""
    from speechser.data.ser_dataset import Batch
    from speechser.models.registry import build_model

    torch.manual_seed(0)
    model = build_model("pcq_ser", {"channels": [8, 8, 8, 8], "segment_seconds": 0.5, "num_bins": 64,
                                    "embed_dim": 8, "dropout": 0.0, "ssl": {"name_or_path": str(tiny_wavlm)}},
                        input_dim=40, num_classes=2).eval()
    assert all(m.use_query for m in model.csq)
    seen = {}
    model.mlcnn.register_forward_hook(lambda mod, args, out: seen.__setitem__("xs", out))
    model.ssl.register_forward_hook(lambda mod, args, out: seen.__setitem__("ssl", out[0]))
    for j, m in enumerate(model.csq):
        m.register_forward_pre_hook(lambda mod, args, j=j: seen.__setitem__(j, args))
    wav = 0.3 * torch.randn(1, 8000)
    batch = Batch(["a"], torch.zeros(1, 1, 40), torch.ones(1, dtype=torch.long), torch.zeros(1, dtype=torch.long),
                  wav, torch.tensor([8000]))
    with torch.no_grad():
        model(batch)
    xs = seen["xs"]
    prev = F.adaptive_avg_pool2d(seen["ssl"].unsqueeze(1), xs[0].shape[-2:])  # (N, 1, T', D) -> x_1's size
    for j in range(3):
        lo, hi, q = seen[j]
        assert lo is xs[j] and hi is xs[j + 1], j
        assert q.shape == (xs[j].shape[0], 1, *xs[j].shape[-2:]), j
        assert torch.allclose(q, F.adaptive_avg_pool2d(prev, xs[j].shape[-2:]), atol=1e-6), j
        prev = q
