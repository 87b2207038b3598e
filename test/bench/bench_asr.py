#!/usr/bin/env python3
"""ASR speed on real AN4 batches.

1. Training-step throughput (forward + backward + Adam) of speechser's Conformer
   blocks against ``torchaudio.models.Conformer`` at identical dimensions, on the
   same subsampled batches: seconds of audio per second.
2. Decoding real-time factor of each decoder (CTC greedy, CTC prefix beam,
   RNN-T greedy, RNN-T beam) on the same audio, with a trained model when
   ``--asr-exp``/``--checkpoint`` name one (its features are normalized with
   the experiment's CMVN), else with an untrained ``conformer_transducer`` of
   the benchmark's dimensions (beam-search speed then says little: an
   untrained model's hypotheses are not a real workload).

Writes ``test/bench/RESULTS_asr.md`` and ``test/bench/figures/asr.json`` (see ``figures.py``). Usage:
``python test/bench/bench_asr.py [--n 48] [--asr-exp egs/an4/asr1/exp/train_char --checkpoint valid.acc.ave_5best.pt]``.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import torch
import torchaudio

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "test"))

from conftest import corpus_path  # noqa: E402
from figures import FIGURES_DIR, figure, write_figures  # noqa: E402

from speechser.decode.ctc import ctc_greedy_search, ctc_prefix_beam_search  # noqa: E402
from speechser.decode.rnnt import rnnt_beam_search, rnnt_greedy_search  # noqa: E402
from speechser.features.fbank import FbankOptions, compute_fbank  # noqa: E402
from speechser.io.audio import read_audio_source  # noqa: E402
from speechser.metrics.report import environment_line  # noqa: E402
from speechser.models.registry import build_model  # noqa: E402
from speechser.nets.conformer import ConformerConfig, ConformerEncoder  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=48, help="utterances")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--d-model", type=int, default=144)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--asr-exp", help="a trained ASR experiment for the decoding part")
    p.add_argument("--checkpoint", default="valid.acc.ave_5best.pt", help="its weights file (relative to it)")
    p.add_argument("--out", default=str(ROOT / "test/bench/RESULTS_asr.md"))
    p.add_argument("--figures-dir", default=str(FIGURES_DIR))
    a = p.parse_args()
    an4 = corpus_path("SPEECHSER_AN4", "an4")
    if an4 is None:
        print("bench: AN4 not found (set SPEECHSER_AN4)", file=sys.stderr)
        return 1
    files = sorted((an4 / "wav/an4_clstk").rglob("*.sph"))[: a.n]
    feats = [torch.from_numpy(compute_fbank(*read_audio_source(str(f)), FbankOptions(num_mel_bins=80))) for f in files]
    audio_sec = sum(f.shape[0] for f in feats) * 0.01
    batches = []
    for i in range(0, len(feats), 16):
        chunk = feats[i : i + 16]
        batches.append((torch.nn.utils.rnn.pad_sequence(chunk, batch_first=True),
                        torch.tensor([c.shape[0] for c in chunk])))
    d, L, H, ffn, k = a.d_model, a.layers, 4, 4 * a.d_model, 15
    torch.manual_seed(0)
    ours = ConformerEncoder(80, ConformerConfig(d_model=d, num_layers=L, num_heads=H, ffn_dim=ffn, conv_kernel=k))
    theirs = torchaudio.models.Conformer(input_dim=d, num_heads=H, ffn_dim=ffn, num_layers=L,
                                         depthwise_conv_kernel_size=k, dropout=0.1)
    sub = [(ours.subsampling(x, n)) for x, n in batches]  # the same subsampled inputs for both
    sub = [(x.detach(), n) for x, n in sub]
    rows = []
    for name, run in (("speechser Conformer blocks", lambda x, n: ours.forward_blocks(x, n)),
                      ("torchaudio.models.Conformer", lambda x, n: theirs(x, n)[0])):
        module = ours if name.startswith("speechser") else theirs
        opt = torch.optim.Adam(module.parameters(), lr=1e-4)
        module.train()
        run(*sub[0]).sum().backward()  # warm-up
        t0, sec = time.perf_counter(), 0.0
        for s in range(a.steps):
            x, n = sub[s % len(sub)]
            loss = run(x, n).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sec += float(batches[s % len(batches)][1].sum()) * 0.01
        rows.append((name, sec / (time.perf_counter() - t0)))
    ratio = rows[0][1] / rows[1][1]

    if a.asr_exp:
        from speechser.tasks.asr import load_experiment

        exp = Path(a.asr_exp)
        asr = load_experiment(exp, a.checkpoint, "cpu")
        model, (mean, std) = asr.model, asr.cmvn_mean_std()
        mean_t, std_t = torch.from_numpy(mean), torch.from_numpy(std)
        batches = [((((x - mean_t) / std_t) * (torch.arange(x.shape[1])[None, :, None] < n[:, None, None])), n)
                   for x, n in batches]
        decode_model = f"trained model {exp / a.checkpoint}"
    else:
        model = build_model("conformer_transducer",
                            {"encoder": {"d_model": d, "num_layers": L, "num_heads": H, "ffn_dim": ffn,
                                         "conv_kernel": k}, "pred_hidden": 320, "joint_dim": 320},
                            input_dim=80, vocab_size=30)
        decode_model = "untrained model of the dimensions above"
    model.eval()
    rtf = {}
    with torch.no_grad():
        for dec in ("ctc_greedy", "ctc_beam", "rnnt_greedy", "rnnt_beam"):
            t0 = time.perf_counter()
            for x, n in batches:
                enc, lens = model.encode(x, n)
                if dec == "ctc_greedy":
                    ctc_greedy_search(model.ctc_log_probs(enc), lens)
                elif dec == "ctc_beam":
                    lp = model.ctc_log_probs(enc)
                    for b in range(len(n)):
                        ctc_prefix_beam_search(lp[b], int(lens[b]), beam=10, token_prune=10)
                elif dec == "rnnt_greedy":
                    rnnt_greedy_search(enc, lens, model.predictor, model.joint)
                else:
                    for b in range(len(n)):
                        rnnt_beam_search(enc[b], int(lens[b]), model.predictor, model.joint, beam=10)
            rtf[dec] = (time.perf_counter() - t0) / audio_sec
    environment = f"{environment_line()}, {torch.get_num_threads()} torch thread(s)"
    report = "\n".join([
        "# ASR benchmarks", "",
        f"- date: {datetime.date.today().isoformat()}",
        f"- machine: {environment}",
        f"- command: `python test/bench/bench_asr.py --n {a.n} --steps {a.steps} --d-model {d} --layers {L}"
        + (f" --asr-exp {a.asr_exp} --checkpoint {a.checkpoint}`" if a.asr_exp else "`"),
        f"- workload: {len(files)} AN4 utterances ({audio_sec:.0f} s), batches of 16, 80-dim fbank, "
        f"d_model {d}, {L} layers, {H} heads, FFN {ffn}, kernel {k}", "",
        "| training step (fwd + bwd + Adam) | s audio / s |", "| --- | --- |",
        *[f"| {r[0]} | {r[1]:.1f} |" for r in rows],
        f"| ratio speechser / torchaudio | {ratio:.2f} |", "",
        f"Decoding with the {decode_model}; beams of 10.", "",
        "| decoder (encoder included, batch 16) | RTF |", "| --- | --- |",
        *[f"| {k2} | {v:.4f} |" for k2, v in rtf.items()], "",
    ])
    print(report)
    Path(a.out).write_text(report)
    workload = f"{len(files)} AN4 utterances ({audio_sec:.0f} s), batches of 16; d_model {d}, {L} layers"
    dec_model = decode_model if a.asr_exp else "untrained conformer_transducer of these dimensions"
    figs = [figure("Conformer blocks training step (fwd + bwd + Adam), the same subsampled AN4 batches",
                   "s audio / s", rows[0][1], {rows[1][0]: rows[1][1]}, note=workload)]
    figs += [figure(f"decoding, {dec} (encoder included, batch 16" + (", beam 10)" if "beam" in dec else ")"), "RTF",
                    v, higher_is_better=False, note=f"{dec_model}; {workload}") for dec, v in rtf.items()]
    write_figures("asr", environment, a.out, figs, __file__, a.figures_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
