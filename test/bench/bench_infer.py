#!/usr/bin/env python3
"""Real-time factor of the joint ASR + SER system's packed inference: one pass (audio formatted and
featurized once, the ASR encoder run once for the decoder and the SER fusion) against the ASR and SER
archives run one after the other, each reading and featurizing the audio itself.

The system is trained by the VLSP recipe on the fixture of ``test/integration/test_vlsp_recipe.py``
(real Emo-DB and AN4 audio in the challenge's release layout): one epoch per model, no BEST-RQ and no
filter loop, since only the speed matters here; the weights do not change the time. ``--encoder`` sets
the Conformer's size (``medium``: d 256, 4 heads, FFN 1024, 6 blocks, the benchmark size; ``tiny``:
the test's). Inference runs over every recording of the fixture's train, dev and test sets; each mode
is timed ``--repeats`` times after a warm-up, and the median is reported.

Writes ``test/bench/RESULTS_infer.md`` and ``test/bench/figures/infer.json`` (see ``figures.py``).
Usage: ``python test/bench/bench_infer.py [--encoder medium]``.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile
import torch
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "test"))
sys.path.insert(0, str(ROOT / "test/integration"))

from conftest import corpus_path  # noqa: E402
from figures import FIGURES_DIR, figure, write_figures  # noqa: E402
from speechser import Speech2TextEmotion  # noqa: E402
from speechser.metrics.report import environment_line  # noqa: E402
from test_vlsp_recipe import make_recipe  # noqa: E402

ENCODERS = {"tiny": {"d_model": 32, "num_layers": 2, "num_heads": 2, "ffn_dim": 64, "conv_kernel": 15},
            "medium": {"d_model": 256, "num_layers": 6, "num_heads": 4, "ffn_dim": 1024, "conv_kernel": 31}}


def train_system(tmp: Path, emodb: Path, an4: Path, encoder: dict) -> Path:
    """The VLSP recipe on the fixture with one-epoch models of ``encoder``'s size; returns the joint archive."""
    rdir, env = make_recipe(tmp, emodb, an4)
    asr = yaml.safe_load((rdir / "conf/asr.yaml").read_text())
    asr["model"]["conf"]["encoder"] = encoder
    asr["trainer"]["max_epochs"] = 1
    (rdir / "conf/asr.yaml").write_text(yaml.safe_dump(asr))
    ser = yaml.safe_load((rdir / "conf/ser.yaml").read_text())
    ser["trainer"]["max_epochs"] = 1
    (rdir / "conf/ser.yaml").write_text(yaml.safe_dump(ser))
    args = ["./run.sh", "--bestrq_config", "", "--filter_config", "", "--asr_config", "conf/asr.yaml",
            "--asr_model", "valid.acc.ave_1best.pt", "--ser_config", "conf/ser.yaml",
            "--ser_model", "valid.ua.ave_1best.pt", "--nj", "2"]
    proc = subprocess.run(args, cwd=rdir, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"the recipe failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return rdir / "exp/ser/packed/joint.tar"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--encoder", choices=sorted(ENCODERS), default="medium")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--out", default=str(ROOT / "test/bench/RESULTS_infer.md"))
    p.add_argument("--figures-dir", default=str(FIGURES_DIR))
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    emodb, an4 = corpus_path("SPEECHSER_EMODB", "emodb"), corpus_path("SPEECHSER_AN4", "an4")
    if emodb is None or an4 is None:
        print("bench: Emo-DB and AN4 are needed (SPEECHSER_EMODB, SPEECHSER_AN4)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="bench-infer-") as tmp:
        t0 = time.perf_counter()
        arc = train_system(Path(tmp), emodb, an4, ENCODERS[a.encoder])
        train_s = time.perf_counter() - t0
        rdir = arc.parents[3]
        scps = [rdir / f"data/{s}/wav.scp" for s in ("train", "dev", "test")]
        audio_s = sum(soundfile.info(ln.split(" ", 1)[1].strip()).duration
                      for scp in scps for ln in scp.read_text().splitlines())
        model = Speech2TextEmotion.from_packed(arc, device="cpu")
        if model.packed.why_two_passes:
            raise RuntimeError(f"not a one-pass system: {model.packed.why_two_passes}")
        model.infer(scps, one_pass=True)  # warm-up
        rows = []
        for one_pass in (True, False):
            walls, parts = [], []
            for _ in range(a.repeats):
                t = time.perf_counter()
                run = model.infer(scps, one_pass=one_pass)
                walls.append(time.perf_counter() - t)
                parts.append(dict(model.last_seconds))
            wall = statistics.median(walls)
            part = parts[walls.index(wall)]
            rows.append((one_pass, wall, part, len(run.items)))
    one, two = rows[0][1], rows[1][1]
    environment = f"{environment_line()}, {a.threads} torch thread(s)"
    lines = [
        "# Benchmark: packed joint ASR + SER inference, one pass against two systems",
        "",
        f"- date: {datetime.date.today().isoformat()}",
        f"- machine: {environment}",
        f"- command: `python test/bench/bench_infer.py --encoder {a.encoder} --repeats {a.repeats} "
        f"--threads {a.threads}`",
        f"- system: the VLSP recipe on its test fixture (Emo-DB + AN4 audio), Conformer encoder {ENCODERS[a.encoder]},"
        f" SER `tdnn_asr_fusion` (channels 16) fused with it; one epoch each (the recipe ran {train_s:.0f} s)",
        f"- audio: {rows[0][3]} recordings, {audio_s:.1f} s (the fixture's train, dev and test sets, 22.05 and "
        f"16 kHz files); median of {a.repeats} timed runs after a warm-up",
        "",
        "| mode | wall s | RTF | x real time | formatting + features s | ASR s | SER s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for one_pass, wall, part, _ in rows:
        name = "one pass (featurize once, ASR encoder once)" if one_pass else "ASR archive, then SER archive"
        feats = f"{part['features']:.2f}" if "features" in part else "(inside each)"
        lines.append(f"| {name} | {wall:.2f} | {wall / audio_s:.4f} | {audio_s / wall:.0f} | {feats} | "
                     f"{part['asr']:.2f} | {part['ser']:.2f} |")
    lines += ["", f"One pass takes {one / two:.2f} of the two systems' time ({two / one:.2f}x faster).", ""]
    Path(a.out).write_text("\n".join(lines))
    workload = (f"{rows[0][3]} recordings, {audio_s:.1f} s; Conformer encoder {a.encoder}; median of {a.repeats} "
                "timed runs")
    write_figures("infer", environment, a.out, [
        figure("packed joint ASR + SER inference, one pass (featurize once, ASR encoder once)", "x real time",
               audio_s / one, note=f"RTF {one / audio_s:.4f}; {two / one:.2f}x faster than the ASR archive then "
               f"the SER archive; {workload}"),
        figure("packed ASR archive, then SER archive (two systems, each featurizing)", "x real time", audio_s / two,
               note=f"RTF {two / audio_s:.4f}; {workload}"),
    ], __file__, a.figures_dir)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
