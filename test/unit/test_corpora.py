"""Corpus discovery: a variable that is set wins and is checked; CI (SPEECHSER_REQUIRE_CORPORA=1)
fails on a missing corpus instead of skipping; a user's machine skips with one line saying why."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from corpora import CorpusNotFound, corpora_required, lookup_corpus, require_corpus

ROOT = Path(__file__).resolve().parents[2]


def fake_an4(root: Path) -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "wav").mkdir()
    for part in ("train", "test"):
        (root / "etc" / f"an4_{part}.transcription").write_text("")
    return root


def test_a_set_variable_wins_and_is_never_replaced_by_the_default(tmp_path):
    checkout = tmp_path / "main"
    fake_an4(tmp_path / "shared" / "corpora" / "an4")  # a valid default beside the checkout
    assert lookup_corpus("an4", checkout, {}).path == tmp_path / "shared" / "corpora" / "an4"
    missing = lookup_corpus("an4", checkout, {"SPEECHSER_AN4": str(tmp_path / "nowhere")})
    assert not missing.found and missing.path == tmp_path / "nowhere"
    assert "SPEECHSER_AN4" in missing.problem and str(tmp_path / "nowhere") in missing.problem


def test_a_folder_that_is_not_the_corpus_is_reported(tmp_path):
    (tmp_path / "empty").mkdir()
    found = lookup_corpus("an4", tmp_path / "main", {"SPEECHSER_AN4": str(tmp_path / "empty")})
    assert not found.found and "an4_train.transcription" in found.problem
    with pytest.raises(CorpusNotFound, match="SPEECHSER_AN4"):
        require_corpus("an4", tmp_path / "main", {"SPEECHSER_AN4": str(tmp_path / "empty")})
    unset = lookup_corpus("emodb", tmp_path / "main", {})
    assert not unset.found and "SPEECHSER_EMODB is unset" in unset.problem


@pytest.mark.parametrize("value,expected", [("1", True), ("true", True), ("0", False), ("", False)])
def test_required_flag(value, expected):
    assert corpora_required({"SPEECHSER_REQUIRE_CORPORA": value}) is expected


def run_corpus_test(tmp_path, **env):
    """Run a one-test file that needs AN4 through the project's conftest, under ``env``."""
    test = ROOT / "test" / "unit" / f"probe_corpus_{os.getpid()}.py"
    test.write_text("def test_needs_an4(an4):\n    assert an4.is_dir()\n")
    try:
        return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test)],
                              cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    finally:
        test.unlink()


def test_ci_fails_naming_variable_and_path_when_a_corpus_is_missing(tmp_path):
    bad = str(tmp_path / "no-an4-here")
    out = run_corpus_test(tmp_path, SPEECHSER_REQUIRE_CORPORA="1", SPEECHSER_AN4=bad)
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "SPEECHSER_AN4" in text and bad in text


def test_without_the_requirement_a_missing_corpus_skips_with_one_line(tmp_path):
    bad = str(tmp_path / "no-an4-here")
    out = run_corpus_test(tmp_path, SPEECHSER_REQUIRE_CORPORA="0", SPEECHSER_AN4=bad)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("corpus an4:")]
    assert len(lines) == 1 and "1 test(s) skipped" in lines[0] and bad in lines[0]
