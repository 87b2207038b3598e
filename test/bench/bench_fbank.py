#!/usr/bin/env python3
"""Throughput of the SER pipeline's CPU-heavy parts on real Emo-DB audio.

* fbank extraction: real-time factor (processing seconds per audio second),
  including reading and resampling 22.05 kHz -> 16 kHz;
* ``tdnn_ser`` training steps (forward + backward + AdamW), with the recipe's
  model config: seconds of audio per second of training.

Writes the table to stdout and to ``test/bench/RESULTS_fbank.md`` (with the machine,
the date and the command), and its figures to ``test/bench/figures/fbank.json`` (see ``figures.py``).
Usage: ``python test/bench/bench_fbank.py [--n 100]``.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "test"))

from conftest import corpus_path  # noqa: E402
from figures import FIGURES_DIR, figure, write_figures  # noqa: E402
from speechser.config import read_yaml  # noqa: E402
from speechser.data.ser_dataset import Batch  # noqa: E402
from speechser.features.fbank import compute_fbank  # noqa: E402
from speechser.io.audio import read_audio_source, resample  # noqa: E402
from speechser.metrics.report import environment_line  # noqa: E402
from speechser.models.registry import build_model  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=100, help="utterances")
    p.add_argument("--steps", type=int, default=10, help="training steps")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--out", default=str(ROOT / "test/bench/RESULTS_fbank.md"))
    p.add_argument("--figures-dir", default=str(FIGURES_DIR))
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    emodb = corpus_path("SPEECHSER_EMODB", "emodb")
    if emodb is None:
        print("bench: Emo-DB not found (set SPEECHSER_EMODB)", file=sys.stderr)
        return 1
    files = sorted((emodb / "wav").glob("*.wav"))[: a.n]
    audio_sec = 0.0
    feats = []
    t0 = time.perf_counter()
    for f in files:
        x, sr = read_audio_source(str(f), f.stem)
        x = resample(x, sr, 16000)
        audio_sec += len(x) / 16000
        feats.append(compute_fbank(x, 16000))
    fbank_time = time.perf_counter() - t0

    conf = read_yaml(ROOT / "egs/emodb/ser1/conf/train_tdnn.yaml")["model"]["conf"]
    torch.manual_seed(0)
    model = build_model("tdnn_ser", conf, input_dim=128, num_classes=7).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    order = np.argsort([len(f) for f in feats])
    batches = []
    for i in range(0, len(order), 16):
        idx = order[i : i + 16]
        seqs = [torch.from_numpy(feats[j]) for j in idx]
        lengths = torch.tensor([len(s) for s in seqs])
        batches.append(Batch([str(j) for j in idx], torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True),
                             lengths, torch.randint(0, 7, (len(idx),))))
    model(batches[0])["loss"].backward()  # warm-up
    trained_sec, t0 = 0.0, time.perf_counter()
    for s in range(a.steps):
        b = batches[s % len(batches)]
        loss = model(b)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        trained_sec += float(b.lengths.sum()) * 0.01
    train_time = time.perf_counter() - t0

    rows = [
        ("fbank extraction (read + resample + fbank)", f"RTF {fbank_time / audio_sec:.4f}",
         f"{audio_sec / fbank_time:.0f}x real time", f"{len(files)} utts, {audio_sec:.0f} s audio"),
        ("tdnn_ser training step (fwd + bwd + AdamW)", f"{trained_sec / train_time:.0f} s audio / s",
         f"{train_time / a.steps * 1000:.0f} ms / step", f"{a.steps} steps, batch 16"),
    ]
    table = ["| what | speed | | workload |", "| --- | --- | --- | --- |"]
    table += [f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} |" for r in rows]
    environment = f"{environment_line()}, {a.threads} torch thread(s)"
    report = "\n".join([
        "# Benchmarks", "",
        f"- date: {datetime.date.today().isoformat()}",
        f"- machine: {environment}",
        f"- command: `python test/bench/bench_fbank.py --n {a.n} --steps {a.steps} --threads {a.threads}`",
        "", *table, "",
    ])
    print(report)
    Path(a.out).write_text(report)
    write_figures("fbank", environment, a.out, [
        figure("fbank extraction (read + resample to 16 kHz + fbank), Emo-DB", "x real time",
               audio_sec / fbank_time, note=f"RTF {fbank_time / audio_sec:.4f}; {len(files)} utts, "
               f"{audio_sec:.0f} s audio"),
        figure("tdnn_ser training step (fwd + bwd + AdamW), recipe config", "s audio / s", trained_sec / train_time,
               note=f"{train_time / a.steps * 1000:.0f} ms / step; {a.steps} steps, batch 16"),
    ], __file__, a.figures_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
