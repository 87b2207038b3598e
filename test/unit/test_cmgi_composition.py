"""CmGI's composition (paper 001, sec. 2.2; :mod:`speechser.nets.cmgi`), pinned numerically, not only its shapes.

What is pinned, each against the code's documented reading of the paper:

- eq. 3 as the module docstring reads it: the self-attention is *intra*-modal (queries, keys and values from
  the same modality, as the paper's text and Figure 2 say), not the printed eq. 3 (keys/values from the other
  modality): the acoustic self-attention does not see the text, and vice versa;
- eq. 4: ``c^a = CA(q = s^a, kv = s^l)`` (acoustic time axis, text key mask) and ``c^l = CA(q = s^l, kv = s^a)``;
- eq. 6 as the docstring reads it: ``output^a = concat(s^a ⊙ G^a, c^a ⊙ (1 − G^a))`` with the gate
  ``G^a = σ(f(concat(s^a, c^a)))`` per frame (the printed ``c^l`` in ``output^a`` lives on the text's axis),
  the same on the semantic side; eq. 7: ``concat(mp(output^a), mp(output^l))``, acoustic first;
- every Table 2 row (``interaction``) equals a by-hand computation from the module's own weights
  (scaled dot-product attention written out from ``in_proj_weight`` / ``out_proj``, masked mean, the gate),
  and the cmgi row differs from the plausible mis-compositions (printed eq. 3, swapped query/key-value,
  printed eq. 6 pairing, gate on the wrong stream);
- the gate's limits: ``G = 1`` keeps only the self-attention stream, ``G = 0`` only the cross-attention stream.
"""

from __future__ import annotations

import math

import pytest
import torch

from speechser.nets.cmgi import INTERACTIONS, CmGIConfig, CrossModalGatedInteraction

D, H = 8, 2  # common width, heads


def make(mode: str = "cmgi", seed: int = 0) -> CrossModalGatedInteraction:
    torch.manual_seed(seed)
    return CrossModalGatedInteraction(10, 12, CmGIConfig(interaction=mode, dim=D, num_heads=H, dropout=0.0)).eval()


def inputs(T: int = 6, U: int = 4, seed: int = 1):
    """Two utterances; the second has padding in both modalities (2 frames, 1 token)."""
    g = torch.Generator().manual_seed(seed)
    xa, xl = torch.randn(2, T, 10, generator=g), torch.randn(2, U, 12, generator=g)
    am, lm = torch.ones(2, T, dtype=torch.bool), torch.ones(2, U, dtype=torch.bool)
    am[1, T - 2:] = False
    lm[1, U - 1:] = False
    return xa, am, xl, lm


def share_weights(dst: CrossModalGatedInteraction, src: CrossModalGatedInteraction) -> CrossModalGatedInteraction:
    """Give ``dst`` every weight of ``src`` it has (the rows share projections, SA and CA by name)."""
    missing, _ = dst.load_state_dict(src.state_dict(), strict=False)
    assert not missing
    return dst


# ---- a by-hand reference of the paper's equations, from the module's own weights ----

def attention(mha: torch.nn.MultiheadAttention, q: torch.Tensor, kv: torch.Tensor, kv_mask: torch.Tensor
              ) -> torch.Tensor:
    """``softmax((q W^Q)(kv W^K)^T / sqrt(d_k)) (kv W^V)`` per head, then the output projection (eqs. 3-4)."""
    wq, wk, wv = mha.in_proj_weight.chunk(3)
    bq, bk, bv = mha.in_proj_bias.chunk(3)
    h = mha.num_heads
    dk = mha.embed_dim // h

    def heads(x: torch.Tensor) -> torch.Tensor:  # (B, L, d) -> (B, h, L, dk)
        return x.view(x.shape[0], x.shape[1], h, dk).transpose(1, 2)

    Q, K, V = heads(q @ wq.T + bq), heads(kv @ wk.T + bk), heads(kv @ wv.T + bv)
    scores = Q @ K.transpose(-1, -2) / math.sqrt(dk)
    scores = scores.masked_fill(~kv_mask[:, None, None, :], float("-inf"))
    out = (scores.softmax(-1) @ V).transpose(1, 2).reshape(q.shape[0], q.shape[1], -1)
    return out @ mha.out_proj.weight.T + mha.out_proj.bias


def mp(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).float()
    return (x * m).sum(1) / m.sum(1)


def gate(f: torch.nn.Linear, s: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(torch.cat([s, c], -1) @ f.weight.T + f.bias)  # σ(f(·)), the module's default order


def reference(m: CrossModalGatedInteraction, xa, am, xl, lm, *, sa_cross: bool = False, ca_swapped: bool = False,
              eq6_printed: bool = False, gate_swapped: bool = False) -> torch.Tensor:
    """Every Table 2 row by hand. The keyword flags build mis-compositions (only for ``T == U``): the printed
    eq. 3, CA with query and key/value swapped, the printed eq. 6 pairing, the gate on the wrong streams."""
    mode = m.conf.interaction
    xa, xl = xa @ m.proj_a.weight.T + m.proj_a.bias, xl @ m.proj_l.weight.T + m.proj_l.bias
    if sa_cross:
        sa, sl = attention(m.sa_a, xa, xl, lm), attention(m.sa_l, xl, xa, am)
    else:
        sa, sl = attention(m.sa_a, xa, xa, am), attention(m.sa_l, xl, xl, lm)  # eq. 3, intra-modal
    if mode == "sa":
        return torch.cat([mp(sa, am), mp(sl, lm)], -1)
    if mode == "sa_gate":  # eq. 5 on s^a, s^l
        g = gate(m.gate.gate.f, mp(sa, am), mp(sl, lm))
        return torch.cat([mp(sa, am) * g, mp(sl, lm) * (1 - g)], -1)
    if ca_swapped:
        ca, cl = attention(m.ca_a, sl, sa, am), attention(m.ca_l, sa, sl, lm)
    else:
        ca, cl = attention(m.ca_a, sa, sl, lm), attention(m.ca_l, sl, sa, am)  # eq. 4
    if mode == "ca":
        return torch.cat([mp(ca, am), mp(cl, lm)], -1)
    if mode == "ca_gate":  # eq. 5 on c^a, c^l
        g = gate(m.gate.gate.f, mp(ca, am), mp(cl, lm))
        return torch.cat([mp(ca, am) * g, mp(cl, lm) * (1 - g)], -1)
    if mode == "cmgi":  # eq. 6: a gate per frame / token
        ga, gl = gate(m.fuse_a.gate.f, sa, ca), gate(m.fuse_l.gate.f, sl, cl)
    else:  # cmgi_pooled: one gate per utterance and modality from the masked means
        ga = gate(m.fuse_a.gate.f, mp(sa, am), mp(ca, am)).unsqueeze(1)
        gl = gate(m.fuse_l.gate.f, mp(sl, lm), mp(cl, lm)).unsqueeze(1)
    if gate_swapped:
        ga, gl = 1 - ga, 1 - gl
    other_a, other_l = (cl, ca) if eq6_printed else (ca, cl)
    out_a = torch.cat([sa * ga, other_a * (1 - ga)], -1)
    out_l = torch.cat([sl * gl, other_l * (1 - gl)], -1)
    return torch.cat([mp(out_a, am), mp(out_l, lm)], -1)  # eq. 7


@pytest.mark.parametrize("mode", INTERACTIONS)
def test_each_table_2_row_equals_the_papers_equations_computed_by_hand_from_its_weights(mode):
    m = make(mode)
    xa, am, xl, lm = inputs()
    with torch.no_grad():
        got, want = m(xa, am, xl, lm), reference(m, xa, am, xl, lm)
    assert got.shape == want.shape == (2, m.output_dim)
    assert torch.allclose(got, want, atol=1e-5), float((got - want).abs().max())


def test_cmgi_differs_from_each_mis_composition_of_the_equations():
    """With ``T == U`` every mis-composition is computable; the module matches the documented one only, so the
    reference test above would catch each of these changes."""
    m = make("cmgi")
    xa, am, xl, lm = inputs(T=5, U=5)
    with torch.no_grad():
        got = m(xa, am, xl, lm)
        assert torch.allclose(got, reference(m, xa, am, xl, lm), atol=1e-5)
        for flag in ("sa_cross", "ca_swapped", "eq6_printed", "gate_swapped"):
            wrong = reference(m, xa, am, xl, lm, **{flag: True})
            assert (got - wrong).abs().max() > 1e-3, flag


@pytest.mark.parametrize("mode", ["sa", "sa_gate"])
def test_self_attention_is_intra_modal_each_half_of_the_sa_row_sees_only_its_modality(mode):
    """The docstring's reading of eq. 3 (the printed eq. 3 attends across modalities): in the ``sa`` row the
    acoustic half is ``mp(s^a)`` and depends on the audio alone, the semantic half on the text alone. In
    ``sa_gate`` (eq. 5) the gate mixes both, so both halves change with either input."""
    m = make(mode)
    xa, am, xl, lm = inputs(T=5, U=5)  # T == U: the printed eq. 3 would be computable, and would fail here
    xa2, xl2 = xa + torch.randn_like(xa), xl + torch.randn_like(xl)
    with torch.no_grad():
        base, new_text, new_audio = m(xa, am, xl, lm), m(xa, am, xl2, lm), m(xa2, am, xl, lm)
    if mode == "sa":
        assert torch.allclose(new_text[:, :D], base[:, :D], atol=1e-6)  # acoustic half ignores the text
        assert torch.allclose(new_audio[:, D:], base[:, D:], atol=1e-6)  # semantic half ignores the audio
    else:
        assert (new_text[:, :D] - base[:, :D]).abs().max() > 1e-4  # the shared gate sees the text
        assert (new_audio[:, D:] - base[:, D:]).abs().max() > 1e-4
    assert (new_text[:, D:] - base[:, D:]).abs().max() > 1e-4
    assert (new_audio[:, :D] - base[:, :D]).abs().max() > 1e-4


class Recorder:
    """Forward (pre-)hooks on the module's sub-modules: what each one was called with and returned."""

    def __init__(self, m: CrossModalGatedInteraction, names) -> None:
        self.calls: dict = {}
        self.outs: dict = {}
        for name in names:
            sub = getattr(m, name)
            sub.register_forward_pre_hook(self._pre(name), with_kwargs=True)
            sub.register_forward_hook(self._post(name))

    def _pre(self, name):
        def hook(mod, args, kwargs):
            self.calls[name] = (args, kwargs)
        return hook

    def _post(self, name):
        def hook(mod, args, out):
            self.outs[name] = out[0] if isinstance(out, tuple) else out
        return hook


def test_the_self_attention_gets_its_own_modality_as_query_key_and_value_and_its_own_mask():
    m = make("cmgi")
    rec = Recorder(m, ["proj_a", "proj_l", "sa_a", "sa_l"])
    xa, am, xl, lm = inputs()
    with torch.no_grad():
        m(xa, am, xl, lm)
    for sa, proj, mask in (("sa_a", "proj_a", am), ("sa_l", "proj_l", lm)):
        (q, k, v), kw = rec.calls[sa]
        x = rec.outs[proj]
        assert torch.equal(q, x) and torch.equal(k, x) and torch.equal(v, x), sa
        assert torch.equal(kw["key_padding_mask"], ~mask), sa


def test_the_acoustic_self_attention_output_does_not_change_with_the_text_and_vice_versa():
    """In the full cmgi row: ``s^a`` (recorded at ``sa_a``) is a function of ``x^a`` only, ``s^l`` of ``x^l``."""
    m = make("cmgi")
    rec = Recorder(m, ["sa_a", "sa_l"])
    xa, am, xl, lm = inputs(T=5, U=5)
    with torch.no_grad():
        m(xa, am, xl, lm)
        sa, sl = rec.outs["sa_a"], rec.outs["sa_l"]
        m(xa, am, xl + torch.randn_like(xl), lm)
        assert torch.equal(rec.outs["sa_a"], sa)
        assert (rec.outs["sa_l"] - sl).abs().max() > 1e-4
        m(xa + torch.randn_like(xa), am, xl, lm)
        assert torch.equal(rec.outs["sa_l"], sl)
        assert (rec.outs["sa_a"] - sa).abs().max() > 1e-4


@pytest.mark.parametrize("mode", ["ca", "ca_gate", "cmgi", "cmgi_pooled"])
def test_cross_attention_takes_queries_from_its_own_modality_and_keys_values_from_the_other(mode):
    """Eq. 4: ``c^a = CA(q = s^a, k = v = s^l)`` with the text's padding mask, ``(B, T, d)``; ``c^l`` the
    converse with the audio's mask, ``(B, U, d)``."""
    m = make(mode)
    rec = Recorder(m, ["sa_a", "sa_l", "ca_a", "ca_l"])
    xa, am, xl, lm = inputs()
    with torch.no_grad():
        m(xa, am, xl, lm)
    sa, sl = rec.outs["sa_a"], rec.outs["sa_l"]
    (q, k, v), kw = rec.calls["ca_a"]
    assert torch.equal(q, sa) and torch.equal(k, sl) and torch.equal(v, sl)
    assert torch.equal(kw["key_padding_mask"], ~lm)
    assert rec.outs["ca_a"].shape == (2, 6, D)  # on the acoustic time axis
    (q, k, v), kw = rec.calls["ca_l"]
    assert torch.equal(q, sl) and torch.equal(k, sa) and torch.equal(v, sa)
    assert torch.equal(kw["key_padding_mask"], ~am)
    assert rec.outs["ca_l"].shape == (2, 4, D)


@pytest.mark.parametrize("mode", ["cmgi", "cmgi_pooled"])
def test_eq_6_fuses_each_modalitys_self_attention_with_its_own_time_aligned_cross_attention(mode):
    """The docstring's reading of eq. 6: ``fuse_a`` mixes ``s^a`` with ``c^a`` (not the printed ``c^l``, which is
    on the text's axis), ``fuse_l`` mixes ``s^l`` with ``c^l``; self-attention first (it takes ``G``)."""
    m = make(mode)
    rec = Recorder(m, ["sa_a", "sa_l", "ca_a", "ca_l", "fuse_a", "fuse_l"])
    xa, am, xl, lm = inputs()
    with torch.no_grad():
        m(xa, am, xl, lm)
    (s, c, mask), _ = rec.calls["fuse_a"]
    assert torch.equal(s, rec.outs["sa_a"]) and torch.equal(c, rec.outs["ca_a"]) and torch.equal(mask, am)
    (s, c, mask), _ = rec.calls["fuse_l"]
    assert torch.equal(s, rec.outs["sa_l"]) and torch.equal(c, rec.outs["ca_l"]) and torch.equal(mask, lm)


def test_the_cmgi_gate_is_computed_per_frame_from_the_self_and_cross_attention_of_that_frame():
    m = make("cmgi")
    rec = Recorder(m, ["sa_a", "ca_a"])
    calls = {}
    m.fuse_a.gate.register_forward_hook(lambda mod, args, out: calls.update(args=args, out=out))
    xa, am, xl, lm = inputs()
    with torch.no_grad():
        m(xa, am, xl, lm)
    s, c = calls["args"]
    assert torch.equal(s, rec.outs["sa_a"]) and torch.equal(c, rec.outs["ca_a"])
    g = calls["out"]
    assert g.shape == (2, 6, D) and float((g - g[:, :1]).abs().max()) > 1e-3  # differs across frames
    want = torch.sigmoid(m.fuse_a.gate.f(torch.cat([s, c], -1)))
    assert torch.allclose(g, want, atol=1e-6)


def set_gate(fusion, value: float) -> None:
    """Make a gate constant: f = 0 weights and a bias of ±30, so σ(f(·)) is 1 or 0 to float precision."""
    with torch.no_grad():
        fusion.gate.f.weight.zero_()
        fusion.gate.f.bias.fill_(30.0 if value == 1 else -30.0)


@pytest.mark.parametrize("mode", ["cmgi", "cmgi_pooled"])
def test_gate_one_keeps_only_the_self_attention_stream_and_gate_zero_only_the_cross_attention_stream(mode):
    """Eq. 6/7 in the output's layout
    ``[mp(s^a ⊙ G^a), mp(c^a ⊙ (1 − G^a)), mp(s^l ⊙ G^l), mp(c^l ⊙ (1 − G^l))]``: with ``G = 1`` a modality's
    block is ``[mp(s), 0]`` (``mp(s)`` is the ``sa`` row's half, same weights); with ``G = 0`` it is
    ``[0, mp(c)]`` (the ``ca`` row's half)."""
    xa, am, xl, lm = inputs()
    src = make(mode)
    sa_row, ca_row = share_weights(make("sa", 5), src), share_weights(make("ca", 5), src)
    with torch.no_grad():
        s_ref, c_ref = sa_row(xa, am, xl, lm), ca_row(xa, am, xl, lm)  # (B, 2d): [acoustic, semantic]
        for ga, gl in ((1, 0), (0, 1)):
            m = share_weights(make(mode, 7), src)
            set_gate(m.fuse_a, ga)
            set_gate(m.fuse_l, gl)
            out = m(xa, am, xl, lm)
            a_s, a_c, l_s, l_c = out.split(D, dim=-1)
            if ga == 1:
                assert torch.allclose(a_s, s_ref[:, :D], atol=1e-5) and a_c.abs().max() < 1e-6
            else:
                assert a_s.abs().max() < 1e-6 and torch.allclose(a_c, c_ref[:, :D], atol=1e-5)
            if gl == 1:
                assert torch.allclose(l_s, s_ref[:, D:], atol=1e-5) and l_c.abs().max() < 1e-6
            else:
                assert l_s.abs().max() < 1e-6 and torch.allclose(l_c, c_ref[:, D:], atol=1e-5)


def test_with_the_acoustic_gate_open_the_acoustic_half_ignores_the_text_and_closed_it_reads_the_text():
    """``G^a = 1`` leaves ``output^a = [s^a, 0]``, a function of the audio alone; ``G^a = 0`` leaves ``[0, c^a]``,
    which attends to the text: the gate switches between the two streams of the *acoustic* side."""
    xa, am, xl, lm = inputs()
    xl2 = xl + torch.randn_like(xl)
    for ga, text_matters in ((1, False), (0, True)):
        m = make("cmgi")
        set_gate(m.fuse_a, ga)
        with torch.no_grad():
            diff = (m(xa, am, xl, lm)[:, :2 * D] - m(xa, am, xl2, lm)[:, :2 * D]).abs().max()
        assert (diff > 1e-4) == text_matters, (ga, float(diff))


@pytest.mark.parametrize("mode", ["sa_gate", "ca_gate"])
def test_eq_5_gives_the_gate_to_the_acoustic_stream_and_its_complement_to_the_semantic_one(mode):
    """Eq. 5 ``concat(mp(x^a) ⊙ G, mp(x^l) ⊙ (1 − G))`` on the SA (``sa_gate``) or CA (``ca_gate``) outputs."""
    xa, am, xl, lm = inputs()
    src = make(mode)
    plain = share_weights(make(mode.split("_")[0], 5), src)  # the same row without the gate
    with torch.no_grad():
        ref = plain(xa, am, xl, lm)
        set_gate(src.gate, 1)
        out = src(xa, am, xl, lm)
        assert torch.allclose(out[:, :D], ref[:, :D], atol=1e-5) and out[:, D:].abs().max() < 1e-6
        set_gate(src.gate, 0)
        out = src(xa, am, xl, lm)
        assert out[:, :D].abs().max() < 1e-6 and torch.allclose(out[:, D:], ref[:, D:], atol=1e-5)


def test_cmgi_output_is_the_acoustic_then_the_semantic_pooled_fusion_eq_7():
    """Eq. 7 with the masked mean: recomputed from the recorded fusion outputs, acoustic block first."""
    m = make("cmgi")
    rec = Recorder(m, ["fuse_a", "fuse_l"])
    xa, am, xl, lm = inputs()
    with torch.no_grad():
        out = m(xa, am, xl, lm)
    oa, ol = rec.outs["fuse_a"], rec.outs["fuse_l"]
    assert oa.shape == (2, 6, 2 * D) and ol.shape == (2, 4, 2 * D)
    assert torch.allclose(out, torch.cat([mp(oa, am), mp(ol, lm)], -1), atol=1e-6)
    assert torch.allclose(out[1, :2 * D], oa[1, :4].mean(0), atol=1e-6)  # padded frames left out
