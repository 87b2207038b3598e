"""Co-attention over the auxiliary tasks (paper 002): it reads only valid frames, and each task's state
steers its own summary."""

import torch

from speechser.nets.co_attention import CoAttention


def test_co_attention_uses_the_padding_mask_and_each_task_steers_its_summary():
    torch.manual_seed(0)
    co = CoAttention(feat_dim=8, aux_dim=6, num_tasks=3, num_heads=2, dropout=0.0).eval()
    frames, aux = torch.randn(2, 5, 8), torch.randn(2, 3, 6)
    mask = torch.ones(2, 5, dtype=torch.bool)
    out = co(frames, mask, aux)
    assert out.shape == (2, 3 * (8 + 6)) == (2, co.output_dim)
    padded = torch.cat([frames, 100 * torch.randn(2, 4, 8)], 1)
    pmask = torch.cat([mask, torch.zeros(2, 4, dtype=torch.bool)], 1)
    assert torch.allclose(co(padded, pmask, aux), out, atol=1e-5)  # padded frames change nothing
    unmasked = co(padded, torch.ones(2, 9, dtype=torch.bool), aux)
    assert not torch.allclose(unmasked, out, atol=1e-3)  # ... and would, without the mask
    per_task = out.view(2, 3, 14)
    assert torch.equal(per_task[..., 8:], aux)  # the tasks' hidden states are passed on
    assert not torch.allclose(per_task[:, 0, :8], per_task[:, 1, :8], atol=1e-4)  # a summary per task
