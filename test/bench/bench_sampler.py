#!/usr/bin/env python3
"""Padding of the frame-budget batch sampler on real corpora: the share of the frames in the
training batches that are real frames, not padding.

For each corpus the utterance lengths are the fbank frame counts the recipes' stage 3 would write
(25 ms window, 10 ms shift at 16 kHz: ``1 + (samples - 400) // 160``), computed from the audio headers
without extracting features; the batches are those of ``speechser.data.loader.bucketed_loader`` for a
training set (shuffled, no single-item batch) with the recipe config's ``max_frames`` and
``max_batch_size``:

* AN4: the ``asr.sh`` training set ``train_nodev_sp`` (948 - 100 utterances, and 0.9 / 1.1 speed-perturbed
  copies, whose lengths are the originals' divided by the factor), ``egs/an4/asr1/conf/train.yaml``;
* Emo-DB: one leave-one-speaker-out fold's training set (8 of the 10 speakers: every fold),
  ``egs/emodb/ser1/conf/train_tdnn.yaml``.

Usage: ``python test/bench/bench_sampler.py`` (prints the table and writes ``test/bench/RESULTS_sampler.md``, and
``test/bench/figures/sampler.json``: see ``figures.py``).
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path
from typing import Dict, List, Sequence

import soundfile

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "test"))

from conftest import corpus_path  # noqa: E402
from figures import FIGURES_DIR, figure, write_figures  # noqa: E402
from speechser.config import read_yaml  # noqa: E402
from speechser.data.sampler import BucketBatchSampler  # noqa: E402
from speechser.metrics.report import environment_line  # noqa: E402

RATE = 16000
WINDOW, SHIFT = 400, 160


def frames(seconds: float) -> int:
    """fbank frames of ``seconds`` of 16 kHz audio (25 ms window, 10 ms shift, no snip-edges padding)."""
    return max(0, 1 + (int(round(seconds * RATE)) - WINDOW) // SHIFT)


def padding_stats(lengths: Sequence[int], max_frames: int, max_batch_size: int) -> Dict[str, float]:
    """Real frames / padded frames over the batches of a training sampler; and the batch count."""
    sampler = BucketBatchSampler(lengths, max_frames, max_batch_size, shuffle=True, seed=0, min_batch_size=2)
    real = sum(lengths)
    padded = sum(len(b) * max(lengths[i] for i in b) for b in sampler.batches)
    sizes = [len(b) for b in sampler.batches]
    return {"utterances": len(lengths), "batches": len(sizes), "mean_batch": sum(sizes) / len(sizes),
            "real": real, "padded": padded, "non_padding": real / padded}


def an4_lengths(an4: Path) -> List[int]:
    """``train_nodev_sp``: the AN4 training utterances but the last 100 in sorted id order (``train_dev``),
    each at speed 1.0, 0.9 and 1.1."""
    # utterance ids are <speaker>-<file id> (local/prepare_an4.py); train_dev is the last 100 of them
    fileids = sorted((an4 / "etc/an4_train.fileids").read_text().split(),
                     key=lambda f: f"{f.split('/')[1]}-{f.split('/')[-1]}")
    keep = fileids[:-100]
    out = []
    for fid in keep:
        seconds = soundfile.info(str(an4 / "wav" / f"{fid}.sph")).duration
        out += [frames(seconds), frames(seconds / 0.9), frames(seconds / 1.1)]
    return out


def emodb_fold_lengths(emodb: Path) -> Dict[str, List[int]]:
    """Per leave-one-speaker-out fold (test = speaker k, valid = the next), the training set's lengths."""
    by_spk: Dict[str, List[int]] = {}
    for wav in sorted(emodb.glob("wav/*.wav")):
        by_spk.setdefault(wav.name[:2], []).append(frames(soundfile.info(str(wav)).duration))
    spks = sorted(by_spk)
    folds = {}
    for k, test in enumerate(spks):
        valid = spks[(k + 1) % len(spks)]
        folds[f"fold{k + 1}"] = [n for s in spks if s not in (test, valid) for n in by_spk[s]]
    return folds


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "test/bench/RESULTS_sampler.md"))
    p.add_argument("--figures-dir", default=str(FIGURES_DIR))
    a = p.parse_args()
    rows = []
    an4_conf = read_yaml(ROOT / "egs/an4/asr1/conf/train.yaml")["data"]
    st = padding_stats(an4_lengths(corpus_path("SPEECHSER_AN4", "an4")), an4_conf["max_frames"], an4_conf["max_batch_size"])
    rows.append(("AN4 train_nodev_sp (asr.sh)", an4_conf, st))
    emodb_conf = read_yaml(ROOT / "egs/emodb/ser1/conf/train_tdnn.yaml")["data"]
    folds = {f: padding_stats(n, emodb_conf["max_frames"], emodb_conf["max_batch_size"])
             for f, n in emodb_fold_lengths(corpus_path("SPEECHSER_EMODB", "emodb")).items()}
    worst = min(folds.values(), key=lambda s: s["non_padding"])
    rows.append(("Emo-DB LOSO training set, worst of 10 folds", emodb_conf, worst))
    mean = sum(s["non_padding"] for s in folds.values()) / len(folds)
    environment = environment_line()
    lines = ["# Benchmark: padding of the frame-budget batch sampler", "",
             f"- date: {datetime.date.today().isoformat()}", f"- machine: {environment}",
             "- command: `python test/bench/bench_sampler.py`",
             "- lengths: fbank frames (25 ms / 10 ms at 16 kHz) from the audio headers; batches of a training "
             "`BucketBatchSampler` (sorted by length, cut at `max_frames` padded frames or `max_batch_size` "
             "items, no single-item batch) with the recipe config's limits", "",
             "| training set | max_frames | max_batch_size | utterances | batches | mean batch | non-padding frames |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, conf, s in rows:
        lines.append(f"| {name} | {conf['max_frames']} | {conf['max_batch_size']} | {s['utterances']} | "
                     f"{s['batches']} | {s['mean_batch']:.1f} | **{100 * s['non_padding']:.2f} %** |")
    lines += ["", f"Emo-DB, mean over the 10 folds: {100 * mean:.2f} % non-padding frames."]
    spread = {n for f in emodb_fold_lengths(corpus_path("SPEECHSER_EMODB", "emodb")).values() for n in f}
    emodb_note = ""
    if len(spread) == 1:
        emodb_note = (f"; every Emo-DB file of this copy is {next(iter(spread))} frames long, so the figure says "
                      "nothing about the sampler")
        lines += ["", f"Every Emo-DB file of this copy is {spread.pop()} frames long: the shared copy stores each "
                  "utterance as exactly 2.0 s (zero-padded or cut), so its batches hold no padding at all and the "
                  "figure says nothing about the sampler; AN4's is the informative one."]
    lines.append("")
    text = "\n".join(lines)
    print(text)
    Path(a.out).write_text(text)
    figs = [figure(f"non-padding frames in the training batches, {name}", "%", 100 * s["non_padding"],
                   note=f"target 95 %; max_frames {conf['max_frames']}, max_batch_size {conf['max_batch_size']}, "
                   f"{s['utterances']} utterances in {s['batches']} batches" + (emodb_note if "Emo-DB" in name else ""))
            for name, conf, s in rows]
    figs.append(figure("non-padding frames in the training batches, Emo-DB LOSO, mean of the 10 folds", "%",
                       100 * mean, note="target 95 %" + emodb_note))
    write_figures("sampler", environment, a.out, figs, __file__, a.figures_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
