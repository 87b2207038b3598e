#!/usr/bin/env python3
"""Speed of the filter loop's decode: batched CTC greedy search with CTC confidences over a
whole training set, through the code every decode stage runs (``speechser.tasks.asr.transcribe_batches``).

The model is a ``conformer_transducer`` of the AN4 recipe's dimensions (``egs/an4/asr1/conf/train.yaml``:
d 144, 6 blocks, 4 heads, kernel 15), untrained: CTC greedy's cost does not depend on the weights (one
encoder pass and an argmax per frame), unlike beam search. Features: 80-dim fbank of AN4's training set,
computed first and not timed; batches of at most the recipe config's ``max_frames`` padded frames, sorted
by length as the decode loader sorts them. Then the scoring half of a filter round: the per-utterance WER of
each hypothesis against AN4's transcript (``etc/an4_train.transcription``) and the filter decision with the
paper's bounds (``speechser.filter.data_filter.filter_utterances``, what ``filter_data_dir`` runs before it
writes the kept data directory), timed the same way.

Usage: ``python test/bench/bench_ctc_decode.py [--threads 2]`` (writes ``test/bench/RESULTS_ctc_decode.md`` and
``test/bench/figures/ctc_decode.json``: see ``figures.py``).
"""

from __future__ import annotations

import argparse
import datetime
import re
import sys
import time
from pathlib import Path
from typing import List

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "test"))

from conftest import corpus_path  # noqa: E402
from figures import FIGURES_DIR, figure, write_figures  # noqa: E402
from speechser.config import read_yaml  # noqa: E402
from speechser.data.sampler import BucketBatchSampler  # noqa: E402
from speechser.features.fbank import FbankOptions, compute_fbank  # noqa: E402
from speechser.filter.data_filter import FilterBounds, filter_utterances  # noqa: E402
from speechser.io.audio import read_audio_source  # noqa: E402
from speechser.metrics.report import environment_line  # noqa: E402
from speechser.models.registry import build_model  # noqa: E402
from speechser.tasks.asr import transcribe_batches  # noqa: E402
from speechser.text.tokenizer import GraphemeTokenizer  # noqa: E402


class FeatsBatch:
    """What the decode loader yields: ``keys``, ``feats (B, T, D)``, ``lengths (B,)``."""

    def __init__(self, keys: List[str], feats: List[torch.Tensor]) -> None:
        self.keys = keys
        self.feats = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
        self.lengths = torch.tensor([f.shape[0] for f in feats])

    def to(self, device: torch.device) -> "FeatsBatch":
        return self

    def __len__(self) -> int:
        return len(self.keys)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=str(ROOT / "test/bench/RESULTS_ctc_decode.md"))
    p.add_argument("--figures-dir", default=str(FIGURES_DIR))
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    an4 = corpus_path("SPEECHSER_AN4", "an4")
    conf = read_yaml(ROOT / "egs/an4/asr1/conf/train.yaml")
    files = sorted((an4 / "wav/an4_clstk").rglob("*.sph"))
    feats = [torch.from_numpy(compute_fbank(*read_audio_source(str(f)), FbankOptions(num_mel_bins=80))) for f in files]
    audio_s = sum(f.shape[0] for f in feats) * 0.01
    tok = GraphemeTokenizer(GraphemeTokenizer.build_token_list(["abcdefghijklmnopqrstuvwxyz '"]))
    torch.manual_seed(0)
    model = build_model(conf["model"]["name"], conf["model"]["conf"], input_dim=80, vocab_size=len(tok.tokens))
    model.eval()
    sampler = BucketBatchSampler([f.shape[0] for f in feats], conf["data"]["max_frames"], conf["data"]["max_batch_size"],
                                 shuffle=False)
    batches = [FeatsBatch([files[i].stem for i in b], [feats[i] for i in b]) for b in sampler]
    transcribe_batches(model, tok, batches[:2])  # warm-up
    times = []
    for _ in range(a.repeats):
        t = time.perf_counter()
        hyps, confs = transcribe_batches(model, tok, batches, "ctc_greedy")
        times.append(time.perf_counter() - t)
    assert len(hyps) == len(confs) == len(files)
    best = sorted(times)[len(times) // 2]
    refs = {}
    for line in (an4 / "etc/an4_train.transcription").read_text().splitlines():
        m = re.match(r"^(.*)\((\S+)\)\s*$", line.strip())
        if m:
            refs[m.group(2)] = " ".join(w for w in m.group(1).split() if w not in ("<s>", "</s>")).lower()
    refs = {k: v for k, v in refs.items() if k in hyps}
    # the untrained model's hypotheses are near-empty, which would make the edit distances free: score
    # hypotheses of a trained model's length instead, each transcript with its first word dropped
    full = {k: " ".join(v.split()[1:]) or v for k, v in refs.items()}
    score_times = []
    for _ in range(a.repeats):
        t = time.perf_counter()
        kept, report, _ = filter_utterances(refs, full, confs, FilterBounds())
        score_times.append(time.perf_counter() - t)
    score = sorted(score_times)[len(score_times) // 2]
    round_s = best + score
    environment = f"{environment_line()}, {a.threads} thread(s)"
    text = "\n".join([
        "# Benchmark: batched CTC greedy decoding with confidences (the filter loop's decode)", "",
        f"- date: {datetime.date.today().isoformat()}", f"- machine: {environment}",
        f"- command: `python test/bench/bench_ctc_decode.py --threads {a.threads}`",
        f"- data: AN4's {len(files)} training utterances, {audio_s:.0f} s of audio, 80-dim fbank (not timed); "
        f"{len(batches)} batches of at most {conf['data']['max_frames']} padded frames / "
        f"{conf['data']['max_batch_size']} utterances",
        f"- model: `{conf['model']['name']}` of the AN4 recipe's dimensions ({conf['model']['conf']['encoder']}), "
        "untrained (greedy CTC costs one encoder pass and an argmax per frame whatever the weights)",
        f"- median of {a.repeats} runs after a warm-up", "",
        "| decode | wall s | x real time | target |", "| --- | --- | --- | --- |",
        f"| CTC greedy + confidences, batched | {best:.2f} | {audio_s / best:.0f} | 200 |",
        f"| per-utterance WER + filter decision ({len(refs)} transcripts, the paper's bounds) | {score:.3f} | "
        f"{audio_s / score:.0f} | |",
        f"| a filter round's decode + scoring | {round_s:.2f} | {audio_s / round_s:.0f} | |", "",
        f"(The scoring is timed on hypotheses of a trained model's length, each transcript with its first word "
        f"dropped, since the untrained model's are near-empty; with the decode's confidences the paper's bounds "
        f"kept {report.kept} of {report.total}.)", ""])
    print(text)
    Path(a.out).write_text(text)
    write_figures("ctc_decode", environment, a.out, [
        figure("batched CTC greedy decoding + confidences (the filter loop's decode), AN4 training set",
               "x real time", audio_s / best,
               note=f"target 200x real time; {best:.2f} s wall for {len(files)} utterances ({audio_s:.0f} s); "
               f"untrained `{conf['model']['name']}` of the AN4 recipe's dimensions; median of {a.repeats} runs"),
        figure("a filter round's decode + per-utterance WER and filter decision, AN4 training set", "x real time",
               audio_s / round_s, note=f"{round_s:.2f} s wall ({best:.2f} s decode, {score:.3f} s scoring) for "
               f"{len(refs)} transcribed utterances"),
    ], __file__, a.figures_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
