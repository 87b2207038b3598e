#!/usr/bin/env python3
"""Conformer encoder training step against its peers, side by side in one run.

The step is forward + backward + SGD of a whole encoder (conv2d 4x subsampling and the blocks) on a batch of
``--batch`` x ``--seconds`` s of 80-dim features (random values: the time does not depend on them), dropout on:

* ``speechser``: ``speechser.nets.conformer.ConformerEncoder`` (relative-position attention, the fused path);
* ``torchaudio``: speechser's own subsampling then ``torchaudio.models.Conformer`` (absolute-position
  attention) at the same dimensions;
* ``ESPnet``: ``espnet2.asr.encoder.conformer_encoder.ConformerEncoder`` (relative positions, conv2d
  subsampling) where ESPnet is installed (an optional extra: ``pip install --no-deps espnet``).

Reported: audio seconds per second of training (median of ``--steps`` timed steps after ``--warmup``), the
ratios, the share of the conv2d subsampling (the same in every encoder) and the blocks alone side by side;
and the variants of the attention and convolution modules tried while optimizing the encoder, with their measured effect
(``VARIANTS_TRIED``: measured with throw-away A/B scripts on the same machine, not re-run here).
``--paper`` uses the paper's size (12 x 512, 8 heads, FFN 2048) with bf16 autocast.

Usage: ``python test/bench/bench_conformer.py [--paper] [--threads 2]`` (writes ``test/bench/RESULTS_conformer.md``,
or ``RESULTS_conformer_paper.md`` with ``--paper``; and ``test/bench/figures/conformer.json``, or
``conformer_paper.json``: see ``figures.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from figures import FIGURES_DIR, figure, write_figures  # noqa: E402
from speechser.metrics.report import environment_line  # noqa: E402
from speechser.nets.conformer import ConformerConfig, ConformerEncoder, Conv2dSubsampling4  # noqa: E402


#: What was tried to speed the blocks up, each checked equal to the kept implementation (outputs within 2e-6
#: in fp32) and timed on the blocks alone; none was faster on this CPU, so none was kept.
VARIANTS_TRIED = [
    "- attention in `scaled_dot_product_attention`, the relative-position term as its additive bias read "
    "through a strided view (no gather): 1.00x at d 256 fp32, 0.89x at the paper size with bf16 autocast;",
    "- the same with Transformer-XL's pad-and-reshape relative shift instead of the strided view: 0.92x (d 256);",
    "- eager softmax attention with the strided shift (no gather, no fused kernel): 0.98x (d 256);",
    "- the convolution module's pointwise convolutions as matrix products on (B, T, D), no transposes: 0.94x "
    "(d 256);",
    "- channels-last memory format for the conv2d subsampling: 0.90x (the subsampling alone).",
]


class TorchaudioEncoder(nn.Module):
    """speechser's 4x subsampling, then ``torchaudio.models.Conformer`` at the same dimensions."""

    def __init__(self, conf: ConformerConfig) -> None:
        super().__init__()
        import torchaudio

        self.subsampling = Conv2dSubsampling4(80, conf.d_model)
        self.blocks = torchaudio.models.Conformer(input_dim=conf.d_model, num_heads=conf.num_heads,
                                                  ffn_dim=conf.ffn_dim, num_layers=conf.num_layers,
                                                  depthwise_conv_kernel_size=conf.conv_kernel, dropout=conf.dropout)

    def forward(self, x: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        y, lens = self.subsampling(x, n)
        return self.blocks(y, lens)[0]


def espnet_encoder(conf: ConformerConfig):
    """ESPnet's ConformerEncoder at the same dimensions, or None where ESPnet is not installed."""
    try:
        from espnet2.asr.encoder.conformer_encoder import ConformerEncoder as EspnetConformer
    except ImportError:
        return None
    enc = EspnetConformer(80, output_size=conf.d_model, attention_heads=conf.num_heads, linear_units=conf.ffn_dim,
                          num_blocks=conf.num_layers, cnn_module_kernel=conf.conv_kernel, input_layer="conv2d",
                          pos_enc_layer_type="rel_pos", selfattention_layer_type="rel_selfattn",
                          macaron_style=True, use_cnn_module=True, rel_pos_type="latest",
                          dropout_rate=conf.dropout, attention_dropout_rate=conf.attention_dropout)

    class Wrapped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc = enc

        def forward(self, x: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
            return self.enc(x, n)[0]

    return Wrapped()


def time_steps(model: nn.Module, run: Callable, x: torch.Tensor, n: torch.Tensor, warmup: int, steps: int,
               autocast: bool) -> float:
    """Median seconds of one SGD training step."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)
    model.train()
    ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if autocast else contextlib.nullcontext
    times: List[float] = []
    for s in range(warmup + steps):
        t = time.perf_counter()
        with ctx():
            loss = run(model, x, n).float().pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if s >= warmup:
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--paper", action="store_true", help="12 x 512, 8 heads, FFN 2048, bf16 autocast")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--no-compile", action="store_true", help="leave out the torch.compile rows (they add a few "
                   "minutes of compilation on a CPU)")
    p.add_argument("--out", help="the markdown (default test/bench/RESULTS_conformer.md, or "
                   "RESULTS_conformer_paper.md with --paper)")
    p.add_argument("--figures-dir", default=str(FIGURES_DIR))
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.paper:
        conf = ConformerConfig(d_model=512, num_layers=12, num_heads=8, ffn_dim=2048, conv_kernel=31)
    else:
        conf = ConformerConfig(d_model=256, num_layers=6, num_heads=4, ffn_dim=1024, conv_kernel=31)
    torch.manual_seed(0)
    T = int(a.seconds * 100)
    x, n = torch.randn(a.batch, T, 80), torch.full((a.batch,), T)
    ours = ConformerEncoder(80, conf)
    models: List[Tuple[str, nn.Module, Callable]] = [
        ("speechser", ours, lambda m, x, n: m(x, n)[0]),
        ("torchaudio.models.Conformer", TorchaudioEncoder(conf), lambda m, x, n: m(x, n)),
    ]
    esp = espnet_encoder(conf)
    if esp is not None:
        models.append(("ESPnet ConformerEncoder", esp, lambda m, x, n: m(x, n)))
    speed: Dict[str, float] = {}
    for name, model, run in models:
        sec = time_steps(model, run, x, n, a.warmup, a.steps, a.paper)
        speed[name] = a.batch * a.seconds / sec
        print(f"{name}: {speed[name]:.1f} audio-s/s", flush=True)
    compiled: Dict[str, float] = {}
    if not a.no_compile:  # trainer.compile: the same models through torch.compile (compiled in the warm-up steps)
        for name, model, run in models[:2]:
            c = torch.compile(model)
            compiled[name] = a.batch * a.seconds / time_steps(c, run, x, n, a.warmup + 1, a.steps, a.paper)
            print(f"{name} + torch.compile: {compiled[name]:.1f} audio-s/s", flush=True)
    base = speed["speechser"]
    rows = [f"| {name} | {v:.1f} | {base / v:.2f} |" for name, v in speed.items()]
    rows += [f"| {name} + torch.compile | {v:.1f} | {base / v:.2f} |" for name, v in compiled.items()]
    if compiled:
        c_base = compiled["speechser"]
        against = [f"eager {k} {c_base / v:.2f}x" for k, v in speed.items()]
        against += [f"compiled {k} {c_base / v:.2f}x" for k, v in compiled.items() if k != "speechser"]
        rows.append(f"| speechser + torch.compile against: {'; '.join(against)} | | |")
    # where the time goes: the subsampling (the same convolutions in every encoder above) and the blocks alone
    # on one subsampled batch, speechser's and torchaudio's blocks side by side
    sub = ours.subsampling
    sub_s = time_steps(sub, lambda m, x, n: m(x, n)[0], x, n, a.warmup, a.steps, a.paper)
    with torch.no_grad():
        y, lens = sub(x, n)
    ta_blocks = models[1][1].blocks
    blocks: Dict[str, float] = {}
    for name, model, run in (("speechser blocks", ours, lambda m, y, n: m.forward_blocks(y, n)),
                             ("torchaudio blocks", ta_blocks, lambda m, y, n: m(y, n)[0])):
        blocks[name] = a.batch * a.seconds / time_steps(model, run, y, lens, a.warmup, a.steps, a.paper)
    block_rows = [f"| {name} | {v:.1f} | {blocks['speechser blocks'] / v:.2f} |" for name, v in blocks.items()]
    share = sub_s / (a.batch * a.seconds / base)
    cmd = ("python test/bench/bench_conformer.py" + (" --paper" if a.paper else "") + f" --threads {a.threads} "
           f"--steps {a.steps} --warmup {a.warmup}" + (" --no-compile" if a.no_compile else ""))
    environment = f"{environment_line()}, {a.threads} thread(s)"
    lines = ["# Benchmark: Conformer encoder training step" + (" (paper size, bf16 autocast)" if a.paper else ""), "",
             f"- date: {datetime.date.today().isoformat()}", f"- machine: {environment}",
             f"- command: `{cmd}`",
             f"- encoder: d {conf.d_model}, {conf.num_heads} heads, FFN {conf.ffn_dim}, {conf.num_layers} blocks, "
             f"kernel {conf.conv_kernel}, conv2d 4x subsampling; batch {a.batch} x {a.seconds:g} s of 80-dim "
             f"features; forward + backward + SGD, dropout on; median of {a.steps} steps after {a.warmup} "
             "warm-up steps" + ("; bf16 autocast" if a.paper else "; fp32"),
             "- ESPnet: " + ("installed, measured" if esp is not None else "not installed here (the optional extra "
                             "`pip install --no-deps espnet` adds its row)"), "",
             "| encoder | audio s / s | speechser (eager) / this |", "| --- | --- | --- |", *rows, "",
             *(["torch.compile (`trainer.compile true`) gives the same outputs and gradients as the eager "
                "encoder (`test/unit/test_compile.py`, within 1e-5); its compilation (minutes on a CPU, in the "
                "warm-up steps here) is not in the figures."] if compiled else []), "",
             f"The conv2d subsampling alone (forward + backward) takes {sub_s:.2f} s, {100 * share:.0f} % of "
             "speechser's step; it is the same two convolutions in every row (torchaudio's row runs speechser's, "
             "ESPnet's `Conv2dSubsampling` is the same architecture), so it dilutes every ratio. The blocks alone "
             f"(the subsampled batch, {int(lens[0])} frames):", "",
             "| blocks | audio s / s | speechser / this |", "| --- | --- | --- |", *block_rows, "",
             "Variants tried while optimizing the encoder (blocks alone, relative to the implementation kept; throw-away A/B runs "
             "on this machine, 2026-11-23, not re-run by this script):", "", *VARIANTS_TRIED, ""]
    text = "\n".join(lines)
    print(text)
    out = Path(a.out) if a.out else ROOT / "test/bench" / ("RESULTS_conformer_paper.md" if a.paper
                                                            else "RESULTS_conformer.md")
    out.write_text(text)
    size = (f"d {conf.d_model}, {conf.num_layers} blocks, {conf.num_heads} heads, FFN {conf.ffn_dim}; batch "
            f"{a.batch} x {a.seconds:g} s; " + ("bf16 autocast" if a.paper else "fp32") +
            f"; median of {a.steps} steps")
    esp_name = "ESPnet ConformerEncoder"
    peers = {name: v for name, v in speed.items() if name != "speechser"}
    peers.setdefault(esp_name, None)  # not installed: a "not measured" row
    write_figures("conformer_paper" if a.paper else "conformer", environment, str(out), [
        figure("Conformer encoder training step (conv2d subsampling + blocks, fwd + bwd + SGD)", "s audio / s",
               base, peers, note=f"{size}; the subsampling (the same in every encoder) is {100 * share:.0f} % of "
               "speechser's step" + ("" if esp is not None else f"; {esp_name}: ESPnet not installed here")),
        *([figure("the same, both through torch.compile (trainer.compile)", "s audio / s", compiled["speechser"],
                  {f"{k} + torch.compile": v for k, v in compiled.items() if k != "speechser"} |
                  {f"{k} (eager)": v for k, v in speed.items() if k != "speechser"},
                  note=f"{size}; compilation time left out")] if compiled else []),
        figure(f"Conformer blocks alone training step (the subsampled batch, {int(lens[0])} frames)", "s audio / s",
               blocks["speechser blocks"], {"torchaudio.models.Conformer blocks": blocks["torchaudio blocks"]},
               note=size),
    ], __file__, a.figures_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
