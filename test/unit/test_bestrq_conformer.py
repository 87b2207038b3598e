from pathlib import Path

import pytest
import torch

from speechser.models.bestrq_conformer import RandomProjectionQuantizer, span_mask
from speechser.train.checkpoint import load_init_params


def test_quantizer_targets_are_deterministic_per_seed():
    feats = torch.randn(2, 41, 20)
    a = RandomProjectionQuantizer(20, 4, 8192, 16, seed=3)
    b = RandomProjectionQuantizer(20, 4, 8192, 16, seed=3)
    c = RandomProjectionQuantizer(20, 4, 8192, 16, seed=4)
    ta, tb, tc = a(feats), b(feats), c(feats)
    assert ta.shape == (2, 10) and ta.dtype == torch.long
    assert torch.equal(ta, tb) and not torch.equal(ta, tc)
    assert torch.allclose(a.codebook.norm(dim=-1), torch.ones(8192))
    # the nearest codebook entry by Euclidean distance of the normalized projection
    z = torch.nn.functional.normalize(feats[:, :40].reshape(2, 10, 80) @ a.projection, dim=-1)
    dist = torch.cdist(z.reshape(20, 16), a.codebook)
    assert torch.equal(dist.argmin(-1).reshape(2, 10), ta)
    assert not any(p.requires_grad for p in a.parameters())  # buffers only: never trained


def test_span_mask_respects_lengths_and_span():
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([1000, 300])
    m = span_mask(lengths, 1000, prob=0.02, span=10, generator=g)
    assert m.shape == (2, 1000) and not m[1, 300:].any()
    assert 0.05 < m[0].float().mean() < 0.4  # ~1 - (1 - 0.02) ** 10 = 0.18
    # every masked run is at least one span long, unless cut by the end of the utterance
    row = m[0].int().tolist()
    runs, n = [], 0
    for v in row + [0]:
        if v:
            n += 1
        elif n:
            runs.append(n)
            n = 0
    assert runs and min(runs[:-1] or runs) >= 10


def test_init_param_prefixes_and_errors(tmp_path: Path):
    src = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    torch.save(src.state_dict(), tmp_path / "a.pt")
    dst = torch.nn.ModuleDict({"enc": torch.nn.Linear(3, 4), "out": torch.nn.Linear(4, 2)})
    load_init_params(dst, [f"{tmp_path / 'a.pt'}:0.:enc."])
    assert torch.equal(dst["enc"].weight, src[0].weight)
    assert not torch.equal(dst["out"].weight, src[1].weight)
    with pytest.raises(ValueError, match="no weight"):
        load_init_params(dst, [f"{tmp_path / 'a.pt'}:decoder."])
    with pytest.raises(ValueError, match="no parameter"):
        load_init_params(dst, [f"{tmp_path / 'a.pt'}:0.:missing."])
    with pytest.raises(ValueError, match=r"\(2, 4\)"):
        load_init_params(dst, [f"{tmp_path / 'a.pt'}:1.:enc."])
    with pytest.raises(FileNotFoundError):
        load_init_params(dst, [f"{tmp_path / 'nope.pt'}"])


@pytest.mark.parametrize("subsampling, factor, masked_per_utt", [("conv2d4", 4, 3), ("dw_striding8", 8, 2)])
def test_targets_follow_the_encoder_frame_rate(monkeypatch, subsampling, factor, masked_per_utt):
    """One target per ``factor`` input frames, and a subsampled frame counts as masked when its block of
    ``factor`` input frames holds a masked one: frames 16-23 and 50 masked are blocks 4, 5 and 12 at 4x,
    blocks 2 and 6 at 8x."""
    from speechser.config import ConfigError
    from speechser.data.asr_dataset import ASRBatch
    import speechser.models.bestrq_conformer as bestrq
    from speechser.models.registry import build_model

    enc = {"d_model": 16, "num_layers": 1, "num_heads": 2, "ffn_dim": 16, "conv_kernel": 3,
           "subsampling": subsampling, "subsampling_channels": 8}
    model = build_model("bestrq_conformer", {"encoder": enc, "codebook_size": 32}, input_dim=20)
    assert model.stack == model.quantizer.stack == factor
    feats = torch.randn(2, 96, 20)
    targets = model.quantizer(feats)
    assert targets.shape == (2, 96 // factor)
    z = torch.nn.functional.normalize(feats.reshape(2, 96 // factor, 20 * factor) @ model.quantizer.projection, dim=-1)
    assert torch.equal((z @ model.quantizer.codebook.T).argmax(-1), targets)  # block j = input frames fj .. fj+f-1

    def fixed_mask(lengths, T, prob, span, generator=None):
        m = torch.zeros(len(lengths), T, dtype=torch.bool)
        m[:, 16:24] = True
        m[:, 50] = True
        return m

    monkeypatch.setattr(bestrq, "span_mask", fixed_mask)
    batch = ASRBatch(["a", "b"], feats, torch.tensor([96, 96]), torch.zeros(2, 1, dtype=torch.long),
                     torch.ones(2, dtype=torch.long), ["", ""])
    assert model(batch)["masked"] == 2 * masked_per_utt
    with pytest.raises(ConfigError, match="stack_frames"):
        build_model("bestrq_conformer", {"encoder": enc, "stack_frames": 12 - factor}, input_dim=20)
