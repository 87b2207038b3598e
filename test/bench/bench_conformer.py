#!/usr/bin/env python3
"""Conformer and FastConformer encoders against their peers, side by side in one run.

Encoders at equal ``d_model`` and layers, on a batch of ``--batch`` x ``--seconds`` s of 80-dim features (random
values: the time does not depend on them):

* ``speechser Conformer``: ``speechser.nets.conformer.ConformerEncoder`` with ``subsampling: conv2d4`` (two full
  3x3 stride-2 convolutions) and the Conformer's kernel;
* ``speechser FastConformer``: the same class with ``subsampling: dw_striding8`` (FastConformer's 8x
  depthwise-separable subsampling, 256 channels) and its depthwise kernel 9;
* ``speechser conv2d8 (ablation)``: 8x with full convolutions, kernel 9: what "8x" gives without
  "depthwise-separable";
* ``torchaudio.models.Conformer``: speechser's conv2d4 subsampling then torchaudio's blocks (absolute-position
  attention);
* ``ESPnet ConformerEncoder``: ``espnet2.asr.encoder.conformer_encoder.ConformerEncoder`` (relative positions,
  conv2d subsampling) where ESPnet is installed (``make bench-extras``).

Measured for each: the training step (forward + backward + SGD, dropout on) and inference (forward, eval mode, no
gradients), each in fp32 and under bf16 autocast; audio seconds per second, the median of ``--steps`` timed
steps after ``--warmup``. For speechser's encoders also the subsampling's share of the training step. The
variants of the attention and convolution modules tried while optimizing the Conformer, with their measured
effect (``VARIANTS_TRIED``: throw-away A/B scripts on the same machine, not re-run here), are listed.
``--paper`` uses the Conformer paper's size (12 x 512, 8 heads, FFN 2048, kernel 31); ``--compile`` adds
speechser's encoders through ``torch.compile`` (minutes of compilation on a CPU).

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
from dataclasses import replace
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
               autocast: bool, train: bool = True) -> float:
    """Median seconds of one SGD training step (``train``), or of one inference forward pass."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)
    model.train(train)
    ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if autocast else contextlib.nullcontext
    times: List[float] = []
    for s in range(warmup + steps):
        t = time.perf_counter()
        if train:
            with ctx():
                loss = run(model, x, n).float().pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        else:
            with torch.no_grad(), ctx():
                run(model, x, n)
        if s >= warmup:
            times.append(time.perf_counter() - t)
    return statistics.median(times)


#: (training?, bf16 autocast?) -> the column's name.
MODES = {(True, False): "training fp32", (True, True): "training bf16", (False, False): "inference fp32",
         (False, True): "inference bf16"}
FAST = "speechser FastConformer"
ESP = "ESPnet ConformerEncoder"
TA = "torchaudio.models.Conformer"


def encoders(conf: ConformerConfig) -> List[Tuple[str, nn.Module, Callable]]:
    """(name, module, how to run it on ``(x, n)``) of every encoder compared."""
    ours = lambda m, x, n: m(x, n)[0]  # noqa: E731
    fast = replace(conf, subsampling="dw_striding8", conv_kernel=9)
    out: List[Tuple[str, nn.Module, Callable]] = [
        ("speechser Conformer", ConformerEncoder(80, conf), ours),
        (FAST, ConformerEncoder(80, fast), ours),
        ("speechser conv2d8 (ablation)", ConformerEncoder(80, replace(fast, subsampling="conv2d8")), ours),
        (TA, TorchaudioEncoder(conf), lambda m, x, n: m(x, n)),
    ]
    esp = espnet_encoder(conf)
    if esp is not None:
        out.append((ESP, esp, lambda m, x, n: m(x, n)))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--paper", action="store_true", help="12 x 512, 8 heads, FFN 2048, kernel 31")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--compile", action="store_true", help="add speechser's encoders through torch.compile "
                   "(training fp32; minutes of compilation on a CPU, left out of the figures)")
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
    audio = a.batch * a.seconds
    models = encoders(conf)
    names = [m[0] for m in models]
    speed: Dict[str, Dict[str, float]] = {mode: {} for mode in MODES.values()}
    for (train, bf16), mode in MODES.items():
        for name, model, run in models:
            speed[mode][name] = audio / time_steps(model, run, x, n, a.warmup, a.steps, bf16, train)
            print(f"{mode} {name}: {speed[mode][name]:.1f} audio-s/s", flush=True)
    share: Dict[str, float] = {}
    for name, model, _ in models[:3]:  # speechser's: the subsampling alone, training fp32
        sub_s = time_steps(model.subsampling, lambda m, x, n: m(x, n)[0], x, n, a.warmup, a.steps, False)
        share[name] = sub_s / (audio / speed["training fp32"][name])
    compiled: Dict[str, float] = {}
    if a.compile:
        for name, model, run in models[:2]:
            compiled[name] = audio / time_steps(torch.compile(model), run, x, n, a.warmup + 1, a.steps, False)
            print(f"{name} + torch.compile: {compiled[name]:.1f} audio-s/s", flush=True)
    rows = [f"| {name} | " + " | ".join(f"{speed[m][name]:.1f}" for m in MODES.values()) +
            (f" | {100 * share[name]:.0f} % |" if name in share else " | |") for name in names]
    ratio_rows = [f"| {FAST} / {name} | " + " | ".join(f"{speed[m][FAST] / speed[m][name]:.2f}x"
                                                        for m in MODES.values()) + " |"
                  for name in names if name != FAST]
    cmd = ("python test/bench/bench_conformer.py" + (" --paper" if a.paper else "") + f" --threads {a.threads} "
           f"--steps {a.steps} --warmup {a.warmup}" + (" --compile" if a.compile else ""))
    environment = f"{environment_line()}, {a.threads} thread(s)"
    title = "# Benchmark: Conformer and FastConformer encoders" + (" (paper size)" if a.paper else "")
    lines = [title, "",
             f"- date: {datetime.date.today().isoformat()}", f"- machine: {environment}",
             f"- command: `{cmd}`",
             f"- encoders: d {conf.d_model}, {conf.num_heads} heads, FFN {conf.ffn_dim}, {conf.num_layers} blocks; "
             f"the Conformers with kernel {conf.conv_kernel} and conv2d 4x subsampling ({conf.d_model} channels), "
             "FastConformer with kernel 9 and dw_striding 8x subsampling (256 channels), the ablation with kernel 9 "
             f"and full 3x3 convolutions at 8x (256 channels); batch {a.batch} x {a.seconds:g} s of 80-dim "
             f"features; median of {a.steps} steps after {a.warmup} warm-up steps; training = forward + backward + "
             "SGD with dropout on, inference = forward in eval mode without gradients",
             "- ESPnet: " + ("installed, measured" if ESP in names else "not installed here (`make bench-extras` "
                             "adds its row)"), "",
             "Audio seconds per second (higher is better); the last column is the subsampling's share of the fp32 "
             "training step (speechser's encoders; torchaudio's row runs speechser's conv2d4 subsampling, "
             "ESPnet's `Conv2dSubsampling` is the same architecture):", "",
             "| encoder | " + " | ".join(MODES.values()) + " | subsampling share |",
             "| --- | " + " | ".join("---" for _ in MODES) + " | --- |", *rows, "",
             "FastConformer's speed-up, the same run:", "",
             "| ratio | " + " | ".join(MODES.values()) + " |", "| --- | " + " | ".join("---" for _ in MODES) + " |",
             *ratio_rows, ""]
    if compiled:
        lines += ["torch.compile (`trainer.compile true`), training fp32, compilation left out: " +
                  "; ".join(f"{k} {v:.1f} audio-s/s ({v / speed['training fp32'][k]:.2f}x its eager step)"
                            for k, v in compiled.items()), ""]
    lines += ["Variants tried while optimizing the Conformer's blocks (blocks alone, relative to the implementation "
              "kept; throw-away A/B runs on this machine, 2026-11-23, not re-run by this script):", "",
              *VARIANTS_TRIED, ""]
    text = "\n".join(lines)
    print(text)
    out = Path(a.out) if a.out else ROOT / "test/bench" / ("RESULTS_conformer_paper.md" if a.paper
                                                            else "RESULTS_conformer.md")
    out.write_text(text)
    size = (f"d {conf.d_model}, {conf.num_layers} blocks, {conf.num_heads} heads, FFN {conf.ffn_dim}; batch "
            f"{a.batch} x {a.seconds:g} s; median of {a.steps} steps")
    figures = []
    for mode in MODES.values():
        peers = {name: v for name, v in speed[mode].items() if name != FAST}
        peers.setdefault(ESP, None)  # not installed: a "not measured" row
        what = ("FastConformer encoder training step (fwd + bwd + SGD)" if mode.startswith("training")
                else "FastConformer encoder inference (forward, eval)")
        figures.append(figure(f"{what}, {mode.split()[1]}", "s audio / s", speed[mode][FAST], peers,
                              note=f"{size}; FastConformer's subsampling is {100 * share[FAST]:.0f} % of its fp32 "
                              f"training step, the Conformer's {100 * share['speechser Conformer']:.0f} %"))
    write_figures("conformer_paper" if a.paper else "conformer", environment, str(out), figures, __file__,
                  a.figures_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
