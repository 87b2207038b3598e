"""CmGI's parts (paper 001): the temporal gate, the pooled gate, and the interaction module's Table-2 rows."""

import pytest
import torch

from speechser.config import ConfigError, from_dict
from speechser.nets.cmgi import INTERACTIONS, CmGIConfig, CrossModalGatedInteraction
from speechser.nets.gated_fusion import PooledGatedFusion, TemporalGatedFusion


def test_the_temporal_gate_differs_per_time_step_and_equals_the_pooled_gate_on_a_constant_sequence():
    torch.manual_seed(0)
    temporal, pooled = TemporalGatedFusion(6), PooledGatedFusion(6)
    pooled.load_state_dict(temporal.state_dict())  # the same f
    s, c = torch.randn(2, 5, 6), torch.randn(2, 5, 6)
    g = temporal.gate(s, c).detach()  # (B, T, D)
    assert g.shape == (2, 5, 6) and float((g - g[:, :1]).abs().max()) > 1e-3  # a gate per step
    assert float(g.min()) >= 0 and float(g.max()) <= 1
    out = temporal(s, c)
    assert torch.allclose(out, torch.cat([s * g, c * (1 - g)], -1))
    const_s, const_c = s[:, :1].expand(-1, 5, -1), c[:, :1].expand(-1, 5, -1)  # constant in time
    assert torch.allclose(temporal(const_s, const_c), pooled(const_s, const_c), atol=1e-6)
    assert not torch.allclose(temporal(s, c), pooled(s, c), atol=1e-3)


def test_the_pooled_gate_ignores_padded_frames():
    torch.manual_seed(0)
    pooled = PooledGatedFusion(4)
    s, c = torch.randn(1, 3, 4), torch.randn(1, 3, 4)
    mask = torch.ones(1, 3, dtype=torch.bool)
    want = pooled(s, c, mask)
    padded = pooled(torch.cat([s, 100 * torch.randn(1, 2, 4)], 1), torch.cat([c, torch.randn(1, 2, 4)], 1),
                    torch.tensor([[True] * 3 + [False] * 2]))
    assert torch.allclose(padded[:, :3], want, atol=1e-6)


def test_the_printed_gate_order_is_available_and_is_not_bounded():
    torch.manual_seed(0)
    gate = TemporalGatedFusion(4, sigmoid_first=True).gate
    s, c = torch.randn(3, 7, 4) * 5, torch.randn(3, 7, 4) * 5
    g = gate(s, c)
    # f(σ(·)) as eq. 6 is printed: the linear map applied to the sigmoid of the concatenation
    assert torch.allclose(g, gate.f(torch.sigmoid(torch.cat([s, c], -1))), atol=1e-6)
    with torch.no_grad():  # a linear map of a sigmoid is not confined to [0, 1]; the default order is
        gate.f.weight.fill_(2.0)
    assert gate(s, c).max() > 1
    default = TemporalGatedFusion(4).gate
    with torch.no_grad():
        default.f.weight.fill_(2.0)
    out = default(s, c)
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("mode", INTERACTIONS)
def test_each_table_2_row_ignores_padding_and_has_its_width(mode):
    torch.manual_seed(0)
    m = CrossModalGatedInteraction(10, 12, CmGIConfig(interaction=mode, dim=8, num_heads=2, dropout=0.0)).eval()
    xa, xl = torch.randn(2, 6, 10), torch.randn(2, 4, 12)
    am, lm = torch.ones(2, 6, dtype=torch.bool), torch.ones(2, 4, dtype=torch.bool)
    out = m(xa, am, xl, lm)
    assert out.shape == (2, 32 if mode in ("cmgi", "cmgi_pooled") else 16) == (2, m.output_dim)
    # padding both modalities with garbage changes nothing
    xa2 = torch.cat([xa, 50 * torch.randn(2, 3, 10)], 1)
    xl2 = torch.cat([xl, 50 * torch.randn(2, 2, 12)], 1)
    am2 = torch.cat([am, torch.zeros(2, 3, dtype=torch.bool)], 1)
    lm2 = torch.cat([lm, torch.zeros(2, 2, dtype=torch.bool)], 1)
    assert torch.allclose(m(xa2, am2, xl2, lm2), out, atol=1e-5)
    out.sum().backward()
    assert m.proj_a.weight.grad is not None and m.proj_l.weight.grad is not None


def test_the_semantic_branch_matters_in_cmgi():
    torch.manual_seed(0)
    m = CrossModalGatedInteraction(10, 12, CmGIConfig(dim=8, num_heads=2, dropout=0.0)).eval()
    xa, am, lm = torch.randn(1, 6, 10), torch.ones(1, 6, dtype=torch.bool), torch.ones(1, 4, dtype=torch.bool)
    a = m(xa, am, torch.randn(1, 4, 12), lm)
    b = m(xa, am, torch.randn(1, 4, 12), lm)
    assert not torch.allclose(a[:, :16], b[:, :16], atol=1e-4)  # the acoustic half sees the text (eq. 4)


def test_config_rejects_an_unknown_row():
    with pytest.raises(ConfigError, match="interaction"):
        from_dict(CmGIConfig, {"interaction": "late_fusion"}, "model.conf.cmgi")
