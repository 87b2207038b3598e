"""Issue 17: torch.compile, a fast path, gives the eager path's results."""

from pathlib import Path

import torch

from speechser.nets.conformer import ConformerConfig, ConformerEncoder
from speechser.tasks.ser import load_ser_config, train_ser


def test_the_compiled_conformer_encoder_gives_the_eager_outputs_and_gradients():
    torch.manual_seed(0)
    enc = ConformerEncoder(20, ConformerConfig(d_model=32, num_layers=2, num_heads=2, ffn_dim=64, conv_kernel=7,
                                               dropout=0.0, attention_dropout=0.0))
    x, n = torch.randn(3, 90, 20), torch.tensor([90, 71, 40])
    y, lens = enc(x, n)
    y.pow(2).mean().backward()
    grads = {k: p.grad.clone() for k, p in enc.named_parameters()}
    enc.zero_grad()
    yc, lens_c = torch.compile(enc)(x, n)
    yc.pow(2).mean().backward()
    assert torch.equal(lens, lens_c)
    assert float((y - yc).abs().max()) < 1e-5
    assert max(float((grads[k] - p.grad).abs().max()) for k, p in enc.named_parameters()) < 1e-5


def test_training_with_trainer_compile_writes_the_eager_models_weights(make_feats_dir, tmp_path: Path, train_seed):
    d = make_feats_dir()
    args = ["--data.train_dir", str(d), "--data.valid_dir", str(d), "--data.label_list", str(d / "emotions.txt"),
            "--data.max_frames", "300", "--model.conf.channels", "8", "--model.conf.embed_dim", "8",
            "--trainer.max_epochs", "1", "--seed", str(train_seed), "--trainer.compile", "true"]
    summary = train_ser(load_ser_config(None, args), tmp_path / "exp")
    assert summary["epochs"] == 1
    state = torch.load(tmp_path / "exp" / "1epoch.pt", weights_only=False)
    state = state.get("model", state)
    assert state and not any(k.startswith("_orig_mod") for k in state)  # loadable by the eager model
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
