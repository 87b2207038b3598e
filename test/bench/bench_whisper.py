#!/usr/bin/env python3
"""Throughput of the frozen Whisper base encoder on real Emo-DB utterances (the shared copy's are 2.0 s each):

* ``utterance``: each utterance on its own length (the positional table cut to its frames), the default;
* ``padded``: each utterance padded to Whisper's 30-s window, as ``transformers`` runs the encoder;
* peer: ``transformers``' own ``WhisperEncoder.forward`` on the padded log-Mel input (the library's path);
* one training pass of the Emo-DB head (``ssl_ser``, weighted sum of the 7 states, the recipe's
  ``conf/train_whisper_ssl_ser.yaml`` sizes; forward, backward, AdamW; batches of 16) over the same
  utterances, with the frozen encoder run live on the waveforms against its stored states (``ssl.cached``).

Every row includes Whisper's log-Mel front-end and all 6 layers; one utterance at a time, float32, no
gradient, as the feature stage (``speechser-compute-ssl``) runs it. Writes ``test/bench/RESULTS_whisper.md``
and ``test/bench/figures/whisper.json``. Usage: ``python test/bench/bench_whisper.py [--n 40]``.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "test"))

from conftest import corpus_path  # noqa: E402
from figures import FIGURES_DIR, command_line, figure, write_figures  # noqa: E402
from speechser.io.audio import read_audio_source, resample  # noqa: E402
from speechser.metrics.report import environment_line  # noqa: E402
from speechser.nets.whisper_encoder import WhisperFrames, load_whisper_encoder  # noqa: E402


def run_states(enc: torch.nn.Module, conf: object, w: torch.Tensor) -> list:
    """Every hidden state of one utterance, ``[(T, D)] * 7``, as stage 3 stores them."""
    hidden, frames = WhisperFrames(enc, conf, "utterance")(w[None], torch.tensor([len(w)]))
    return [h[0, : int(frames[0])] for h in hidden]


def train_pass(model_dir: Path, wavs: list, stored: list) -> dict:
    """Seconds of one training pass (batches of 16) of the recipe's head with the live encoder and with the
    stored states."""
    from speechser.config import read_yaml
    from speechser.data.ser_dataset import Batch
    from speechser.models.registry import build_model

    conf = read_yaml(ROOT / "egs/emodb/ser1/conf/train_whisper_ssl_ser.yaml")["model"]["conf"]
    conf["ssl"] = {**conf["ssl"], "name_or_path": str(model_dir)}
    out = {}
    for name, cached in (("train_live", False), ("train_cached", True)):
        torch.manual_seed(0)
        model = build_model("ssl_ser", {**conf, "ssl": {**conf["ssl"], "cached": cached, "freeze_all": True}},
                            input_dim=stored[0].shape[1], num_classes=7).train()
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        t0 = time.perf_counter()
        for i in range(0, len(wavs), 16):
            w = torch.nn.utils.rnn.pad_sequence(wavs[i: i + 16], batch_first=True)
            f = torch.nn.utils.rnn.pad_sequence(stored[i: i + 16], batch_first=True)
            n = len(wavs[i: i + 16])
            batch = Batch([str(j) for j in range(n)], f, torch.tensor([len(s) for s in stored[i: i + 16]]),
                          torch.randint(0, 7, (n,)), w, torch.tensor([len(x) for x in wavs[i: i + 16]]))
            loss = model(batch)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
        out[name] = time.perf_counter() - t0
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=40, help="utterances (every 13th Emo-DB file)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--out", default=str(ROOT / "test/bench/RESULTS_whisper.md"))
    p.add_argument("--figures-dir", default=str(FIGURES_DIR))
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    emodb = corpus_path("SPEECHSER_EMODB", "emodb")
    model_dir = corpus_path("SPEECHSER_WHISPER_BASE", "whisper_base")
    if emodb is None or model_dir is None:
        print("bench: Emo-DB or Whisper base not found (SPEECHSER_EMODB, SPEECHSER_WHISPER_BASE)", file=sys.stderr)
        return 1
    files = sorted((emodb / "wav").glob("*.wav"))[::13][: a.n]
    wavs = []
    for f in files:
        x, sr = read_audio_source(str(f), f.stem)
        wavs.append(torch.from_numpy(resample(x, sr, 16000)))
    audio = sum(len(w) for w in wavs) / 16000
    enc, conf = load_whisper_encoder(str(model_dir))
    enc.eval()
    seconds = {}
    with torch.no_grad():
        for window in ("utterance", "padded"):
            run = WhisperFrames(enc, conf, window)
            run(wavs[0][None], torch.tensor([len(wavs[0])]))  # warm-up
            t0 = time.perf_counter()
            for w in wavs:
                run(w[None], torch.tensor([len(w)]))
            seconds[window] = time.perf_counter() - t0
        run = WhisperFrames(enc, conf, "padded")
        t0 = time.perf_counter()
        for w in wavs:
            mel = run.log_mel([w.numpy()], pad_to_window=True)
            enc(mel, output_hidden_states=True)
        seconds["transformers"] = time.perf_counter() - t0
        stored = [torch.cat(run_states(enc, conf, w), dim=-1) for w in wavs]
    seconds.update(train_pass(model_dir, wavs, stored))
    speed = {k: audio / v for k, v in seconds.items()}
    rows = [
        ("speechser, utterance length (default)", speed["utterance"], seconds["utterance"] / len(wavs)),
        ("speechser, padded to 30 s", speed["padded"], seconds["padded"] / len(wavs)),
        ("transformers WhisperEncoder, padded to 30 s", speed["transformers"], seconds["transformers"] / len(wavs)),
    ]
    rows += [
        ("training pass of the head, live frozen encoder", speed["train_live"], seconds["train_live"] / len(wavs)),
        ("training pass of the head, stored states (ssl.cached)", speed["train_cached"],
         seconds["train_cached"] / len(wavs)),
    ]
    environment = f"{environment_line()}, {a.threads} torch thread(s)"
    table = ["| run | x real time | ms / utterance |", "| --- | --- | --- |"]
    table += [f"| {r[0]} | {r[1]:.1f} | {1000 * r[2]:.1f} |" for r in rows]
    report = "\n".join([
        "# Whisper base encoder throughput (frozen, float32, one utterance at a time)", "",
        f"- date: {datetime.date.today().isoformat()}",
        f"- machine: {environment}",
        f"- command: `{command_line(__file__)}`",
        f"- workload: {len(wavs)} Emo-DB utterances, {audio:.0f} s of audio ({audio / len(wavs):.2f} s each)",
        "", *table, "",
        f"The utterance-length form is {seconds['padded'] / seconds['utterance']:.1f}x faster than the padded one "
        f"on these utterances; the padded form matches transformers' encoder output exactly "
        "(test/unit/test_whisper_encoder.py). A training pass of the head from stored states is "
        f"{seconds['train_live'] / seconds['train_cached']:.0f}x faster than with the live frozen encoder.", "",
    ])
    print(report)
    Path(a.out).write_text(report)
    write_figures("whisper", environment, a.out, [
        figure("Whisper base encoder on Emo-DB utterances, own length", "x real time", speed["utterance"],
               peers={"transformers (30-s padded)": speed["transformers"]},
               note=f"{len(wavs)} utts, {audio:.0f} s; log-Mel + 6 layers"),
        figure("Whisper base encoder on Emo-DB utterances, padded to 30 s", "x real time", speed["padded"],
               peers={"transformers (30-s padded)": speed["transformers"]}),
        figure("ssl_ser head training pass on Whisper base, stored states vs live frozen encoder", "x real time",
               speed["train_cached"], peers={"live frozen encoder": speed["train_live"]}),
    ], __file__, a.figures_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
