"""egs/mini_an4/asr1, the smallest complete ASR recipe, end to end on the shared AN4 copy: 250 training
utterances, the configuration for small data (conf/train_small.yaml), every stage. It must converge on 2
CPU cores in about ten minutes: the test checks the test-set WER against a bound with a margin (the recipe's
README states the WER it reaches), and that training stopped by its own rules (early stopping or the last
epoch), not by a warm-up longer than the run."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from recipe_helpers import copy_recipe

ROOT = Path(__file__).resolve().parents[2]
#: The test WER (CTC greedy) the test requires; the README states what the recipe reaches (71 % on the
#: machine it was measured on). A model that did not learn stays near 100 %.
WER_BOUND = 0.85


def test_mini_an4_converges_end_to_end(an4, tmp_path):
    rdir = copy_recipe(ROOT / "egs/mini_an4/asr1", tmp_path / "egs")
    env = dict(os.environ, SPEECHSER_AN4=str(an4), PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    proc = subprocess.run(["./run.sh", "--nj", "2"], cwd=rdir, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert re.search(r"Successfully finished\. \[elapsed=\d+s\]", proc.stdout)
    assert len((rdir / "data/train/utt2spk").read_text().splitlines()) == 250
    exp = rdir / "exp/train_small_char"
    log = (exp / "train.log").read_text()
    assert "never reaches its peak" not in log
    # CTC only: decoded with the CTC decoders the model has, and packed with one of them
    assert sorted(p.name for p in exp.glob("decode_*_test")) == ["decode_ctc_beam_test", "decode_ctc_greedy_test"]
    wer = json.loads((exp / "decode_ctc_greedy_test/scores.json").read_text())["wer"]
    assert wer < WER_BOUND, f"test WER {wer:.3f}"
    assert (exp / "packed/model.tar").is_file()
    results = (rdir / "exp/RESULTS.md").read_text()
    assert "- training command: `" in results and "- training time: " in results
