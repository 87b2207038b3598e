"""The scoring stage's report.html, opened in a real headless Chromium (the OS package; `make install-browser`):
it loads without script errors, shows the results table and every section, and each embedded image decodes.
Without Chromium the test is skipped with the reason, unless SPEECHSER_REQUIRE_BROWSER=1 makes it fail."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from speechser.bin.score_ser import main as score_ser
from speechser.metrics.decode_dir import write_ser_decode

LABELS = ["ang", "neu", "sad"]
#: Collects what a person would see go wrong: script errors, and images that fail to decode.
PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || e.type)), true);
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const bad = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt);
  document.body.setAttribute('data-probe', JSON.stringify({images: imgs.length, bad: bad, errors: window.__errors}));
});
</script>"""


def browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("SPEECHSER_REQUIRE_BROWSER") == "1":
        pytest.fail("no Chromium (make install-browser) and SPEECHSER_REQUIRE_BROWSER=1")
    pytest.skip("no Chromium installed (make install-browser installs it from the OS packages)")


def scored_folds(root: Path) -> Path:
    """Two folds' decode directories and their experiments' training statistics, then speechser-score-ser."""
    rng = np.random.default_rng(0)
    dirs = []
    for k in (1, 2):
        exp = root / f"exp/fold{k}"
        refs = [i % 3 for i in range(30)]
        post = rng.dirichlet(np.ones(3), size=30) + 0.8 * np.eye(3)[refs]
        write_ser_decode(exp / "decode_test", [f"s{k}_u{i:02d}" for i in range(30)], post / post.sum(1, keepdims=True),
                         refs, LABELS)
        rows = ["epoch\ttrain_loss\tvalid_loss\tvalid_macro_f1\tvalid_ua\tvalid_wa\tseconds"]
        rows += [f"{e}\t{1.5 / e:.4f}\t{1.6 / e + 0.1:.4f}\t0.5\t{0.4 + 0.04 * e:.4f}\t0.5\t1.0" for e in range(1, 9)]
        (exp / "train_stats.tsv").write_text("\n".join(rows) + "\n")
        dirs.append(str(exp / "decode_test"))
    (root / "labels.txt").write_text("\n".join(LABELS) + "\n")
    (root / "utt2spk").write_text("".join(f"s{k}_u{i:02d} spk{k}\n" for k in (1, 2) for i in range(30)))
    out = root / "scores"
    assert score_ser(["--label-list", str(root / "labels.txt"), "--out-dir", str(out), "--title", "a <test> run",
                      "--utt2spk", str(root / "utt2spk"), *dirs]) == 0
    return out


def test_report_html_renders_in_a_headless_browser(tmp_path):
    exe = browser()
    out = scored_folds(tmp_path)
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "src='http" not in page and "href='http" not in page  # self-contained: nothing fetched
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1200,2600"]
    dom = subprocess.run([exe, *flags, "--dump-dom", probed.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    probe = re.search(r"data-probe=\"([^\"]*)\"", dom.stdout)
    assert probe, "the page's load event never ran"
    result = json.loads(html.unescape(probe.group(1)))
    assert result == {"images": 3, "bad": [], "errors": []}  # confusion, per-class recall, training curves
    for section in ("results", "confusion", "per-class", "per-speaker", "training"):
        assert f"id=\"{section}\"" in dom.stdout, section
    assert "a &lt;test&gt; run" in dom.stdout  # the title is escaped, not markup
    assert re.search(r"<td>fold1</td><td>30</td>", dom.stdout.replace("\n", ""))
    shot = tmp_path / "report.png"
    proc = subprocess.run([exe, *flags, f"--screenshot={shot}", (out / "report.html").as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and shot.stat().st_size > 20000, proc.stderr[-2000:]


def test_asr_report_lists_the_worst_utterances_aligned(tmp_path):
    """speechser-score-asr writes the experiment's report.html: WER per decode, and the worst utterances
    (by WER) with reference and hypothesis aligned; it renders in the browser without errors."""
    from speechser.bin.score_asr import main as score_asr
    from speechser.metrics.asr import write_asr_scores

    exe = browser()
    exp = tmp_path / "exp/asr"
    refs = {"u1": "one two three four", "u2": "go left now", "u3": "stop", "u4": "five six"}
    hyps = {"u1": "one two three four", "u2": "go right", "u3": "top stop", "u4": "five six"}
    scores = write_asr_scores(refs, hyps, exp / "decode_ctc_greedy_test")
    (exp / "decode_ctc_greedy_test/scores.json").write_text(json.dumps({**scores, "decoder": "ctc_greedy", "n": 4, "n_ref": 4}))
    (exp / "train_stats.tsv").write_text("epoch\ttrain_loss\tvalid_loss\tvalid_acc\n1\t3.0\t3.2\t0.2\n2\t2.0\t2.4\t0.4\n")
    (exp / "filter").mkdir()
    (exp / "filter/rounds.tsv").write_text("round\tkept\tremoved_low_conf\tremoved_high_wer\n0\t100\t0\t0\n1\t91\t4\t5\n")
    assert score_asr(["--results-md", str(tmp_path / "RESULTS.md"), "--title", "asr test",
                      str(exp / "decode_ctc_greedy_test")]) == 0
    page = (exp / "report.html").read_text(encoding="utf-8")
    # u3 (1 insertion in 1 word, 100 %) before u2 (1 sub + 1 del in 3 words, 67 %); the correct ones last
    assert page.index("<b>u3</b>") < page.index("<b>u2</b>") < page.index("<b>u1</b>")
    assert re.search(r"REF: go +left now", page) and "WER 100.0 %" in page and "<b>u4</b>: no error" in page
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    dom = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", probed.as_uri()],
                         capture_output=True, text=True, timeout=120)
    probe = re.search(r"data-probe=\"([^\"]*)\"", dom.stdout)
    assert probe and json.loads(html.unescape(probe.group(1))) == {"images": 1, "bad": [], "errors": []}
    assert "<td>removed_high_wer</td>" not in page and "<th>removed_high_wer</th>" in page and "<td>91</td>" in page
    for section in ("results", "training", "filter", "worst"):
        assert f"id=\"{section}\"" in dom.stdout, section


#: Waits for every <audio> to load its metadata (or fail), then reports their durations.
AUDIO_PROBE = """<script>
window.addEventListener('load', () => {
  const players = [...document.querySelectorAll('audio')];
  Promise.all(players.map(a => new Promise(done => {
    a.addEventListener('loadedmetadata', () => done(a.duration), {once: true});
    a.addEventListener('error', () => done(-1), {once: true});
    a.preload = 'metadata'; a.load();
  }))).then(d => document.body.setAttribute('data-audio', JSON.stringify(d)));
});
</script>"""


def test_knn_report_shows_neighbours_of_errors_with_players(tmp_path):
    """A k-NN decode's report: the most confidently misrecognized test utterance with its nearest datastore
    neighbours (label, similarity) and an audio player for each, whose clip the browser decodes."""
    import torch

    from conftest import write_tone
    from speechser.knn.decode_ser import utterance_audio, write_neighbours

    exe = browser()
    data = tmp_path / "data"
    data.mkdir()
    store_keys = ["tr1", "tr2", "tr3", "tr4"]
    for i, key in enumerate(["te1", "te2", *store_keys]):
        write_tone(data / f"{key}.wav", 0.5 + 0.25 * i, freq=200 + 50 * i)
    # te1: right; te2: sad decoded as ang with p 0.9 (the error shown); no audio for tr4 (not in wav.scp)
    (data / "wav.scp").write_text("".join(f"{k} {data / k}.wav\n" for k in ["te1", "te2", "tr1", "tr2", "tr3"]))
    d = tmp_path / "exp/fold1/knn/test"
    write_ser_decode(d, ["te1", "te2"], np.array([[0.8, 0.1, 0.1], [0.9, 0.05, 0.05]]), [0, 2], LABELS)
    sims = torch.tensor([[0.9, 0.5, 0.2], [0.95, 0.7, 0.4]])
    idx = torch.tensor([[0, 1, 2], [3, 0, 2]])
    write_neighbours(d, ["te1", "te2"], sims, idx, store_keys, ["ang", "neu", "sad", "ang"], utterance_audio([data]))
    (tmp_path / "labels.txt").write_text("\n".join(LABELS) + "\n")
    out = tmp_path / "scores_knn"
    assert score_ser(["--label-list", str(tmp_path / "labels.txt"), "--out-dir", str(out), str(d)]) == 0
    page = (out / "report.html").read_text(encoding="utf-8")
    section = page[page.index("id='neighbours'"):]
    assert "te2" in section and "te1" not in section  # only the error
    assert "reference <b>sad</b>, decoded <b>ang</b> (p = 0.90)" in section
    rows = re.findall(r"<tr><td>(\d)</td><td>(\w+)</td><td>(\w+)</td><td>([\d.]+)</td><td>(.*?)</td></tr>", section)
    assert [r[:4] for r in rows] == [("1", "tr4", "ang", "0.9500"), ("2", "tr1", "ang", "0.7000"),
                                     ("3", "tr3", "sad", "0.4000")]
    assert rows[0][4] == "<i>no audio (no wav.scp)</i>" and rows[1][4].startswith("<audio")
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("<head>", "<head>" + PROBE + AUDIO_PROBE, 1), encoding="utf-8")
    dom = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required",
                          "--virtual-time-budget=10000", "--dump-dom", probed.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    probe = re.search(r"data-probe=\"([^\"]*)\"", dom.stdout)
    assert probe and json.loads(html.unescape(probe.group(1)))["errors"] == []
    durations = re.search(r"data-audio=\"([^\"]*)\"", dom.stdout)
    assert durations, "the players' metadata never loaded"
    # te2 (0.75 s), tr1 (1.0 s), tr3 (1.5 s): every clip decodes, at its own length
    assert json.loads(html.unescape(durations.group(1))) == pytest.approx([0.75, 1.0, 1.5], abs=0.01)
