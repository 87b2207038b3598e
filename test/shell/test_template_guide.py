"""egs/TEMPLATE/README.md's first-recipe example, run as written: its local/data.sh and its commands, on a
folder in the layout it describes (<speaker>/<emotion>_<n>.wav) made from Emo-DB's real audio, through
every stage of ser.sh (a tiny TDNN), so that the guide cannot drift from the templates (issue 16)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from test_hostile_recipes import ROOT

GUIDE = ROOT / "egs/TEMPLATE/README.md"


def guide_block(name: str) -> str:
    """The fenced code block after the marker ``<!-- guide-example: <name> -->``."""
    text = GUIDE.read_text(encoding="utf-8")
    m = re.search(rf"<!-- guide-example: {re.escape(name)} -->\n```bash\n(.*?)```", text, re.S)
    assert m, f"{GUIDE}: no example block '{name}'"
    return m.group(1)


def test_the_guide_example_names_its_placeholder_step():
    commands = guide_block("commands")
    assert "# write local/data.sh as above" in commands and commands.startswith("egs/TEMPLATE/ser1/setup.sh")


def test_first_recipe_from_the_guide_runs_end_to_end(tmp_path: Path, emodb: Path):
    corpus = tmp_path / "downloads/mycorpus"
    picks = {"03": {"W": "angry", "N": "neutral"}, "08": {"W": "angry", "N": "neutral"},
             "09": {"W": "angry", "N": "neutral"}}
    for spk, emotions in picks.items():
        (corpus / f"spk{spk}").mkdir(parents=True)
        for letter, name in emotions.items():
            wavs = sorted(emodb.glob(f"wav/{spk}???{letter}?.wav"))[:3]
            assert len(wavs) == 3, (spk, letter)
            for n, wav in enumerate(wavs, 1):
                (corpus / f"spk{spk}/{name}_{n}.wav").symlink_to(wav)
    (tmp_path / "egs").mkdir()
    (tmp_path / "egs/TEMPLATE").symlink_to(ROOT / "egs/TEMPLATE")
    data_sh = tmp_path / "guide_data.sh"
    data_sh.write_text(guide_block("local/data.sh"))
    # the guide's commands, with its "write local/data.sh as above" step done by copying the block
    script = guide_block("commands").replace("# write local/data.sh as above, then:",
                                             f"cp {data_sh} local/data.sh && chmod +x local/data.sh")
    tiny = ("--trainer.max_epochs 3 --model.conf.channels 16 --model.conf.embed_dim 8 "
            "--trainer.keep_nbest 2 --trainer.average_nbest 2")
    script = script.replace('--ser_args "--trainer.max_epochs 3"', f'--ser_args "{tiny}" --nj 2')
    env = dict(os.environ, SPEECHSER_MYCORPUS=str(corpus), PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    r = tmp_path / "egs/mycorpus/ser1"
    assert (r / "data/all/emotions.txt").read_text() == "angry\nneutral\n"
    assert len((r / "data/all/wav.scp").read_text().splitlines()) == 18
    assert "spk03_angry_1 spk03" in (r / "data/all/utt2spk").read_text()
    # leave-one-speaker-out over the 3 speakers, scored, reported and packed
    for k in (1, 2, 3):
        assert (r / f"exp/train/loso/fold{k}/decode_test/hyp").is_file()
        assert (r / f"exp/train/loso/packed/fold{k}.tar").is_file()
    assert (r / "exp/train/loso/scores/report.html").is_file()
    results = (r / "exp/RESULTS.md").read_text()
    assert "train-loso" in results and "| fold3 | 6 |" in results
    assert re.search(r"Successfully finished\. \[elapsed=\d+s\]", proc.stdout)
