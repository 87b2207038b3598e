"""What a new user meets in the first hour, each fixed where it got in the way: the environment path.sh
accepts, what `make test` may do to a machine."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _recipe_without_project_venv(tmp_path: Path) -> Path:
    """A recipe whose project root has no .venv: its path.sh is the template's, its utils/ a real folder."""
    (tmp_path / "root/utils").mkdir(parents=True)
    r = tmp_path / "root/egs/x/ser1"
    r.mkdir(parents=True)
    (r / "utils").symlink_to("../../../utils")
    shutil.copy(ROOT / "egs/TEMPLATE/common/path.sh", r / "path.sh")
    return r


def _source_path_sh(r: Path, path: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", ". ./path.sh && command -v python3"], cwd=r, capture_output=True,
                          text=True, env={"PATH": path, "HOME": os.environ.get("HOME", "/tmp"), **env})


def test_path_sh_accepts_an_environment_that_has_speechser_silently(tmp_path: Path):
    r = _recipe_without_project_venv(tmp_path)
    venv_bin = str(Path(sys.executable).parent)
    active = _source_path_sh(r, f"{venv_bin}:/usr/bin:/bin")  # an activated environment with speechser
    assert active.returncode == 0 and active.stderr == "", active.stderr
    chosen = _source_path_sh(r, "/usr/bin:/bin", SPEECHSER_VENV=str(Path(sys.executable).parent.parent))
    assert chosen.returncode == 0 and chosen.stderr == "" and chosen.stdout.strip().startswith(
        str(Path(sys.executable).parent.parent)), chosen.stdout + chosen.stderr
    bare = tmp_path / "bare"  # a Python without speechser: the warning says the three ways out
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    missing = _source_path_sh(r, f"{bare}/bin:/usr/bin:/bin")
    assert "no Python environment with speechser" in missing.stderr and "SPEECHSER_VENV" in missing.stderr
    wrong = _source_path_sh(r, "/usr/bin:/bin", SPEECHSER_VENV=str(tmp_path / "nowhere"))
    assert "has no bin/activate" in wrong.stderr


def test_every_recipe_carries_the_template_path_sh():
    template = (ROOT / "egs/TEMPLATE/common/path.sh").read_text()
    for p in ROOT.glob("egs/*/*/path.sh"):
        assert p.read_text() == template, p


def test_make_test_installs_no_system_package_and_ci_asks_for_the_browser():
    make = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^test:.*\n((?:\t.*\n)+)", make, re.M).group(1)
    assert "install_browser" not in recipe and "apt" not in recipe
    ci = (ROOT / ".ci/run").read_text()
    assert re.search(r"^make install-browser \|\|", ci, re.M) and ci.index("install-browser") < ci.index("make test")


def test_run_sh_from_elsewhere_says_where_to_run_it():
    for run_sh in sorted(ROOT.glob("egs/*/*/run.sh")):
        assert '[ -f ./db.sh ] || { echo "$0: run it from its recipe directory' in run_sh.read_text(), run_sh
    proc = subprocess.run(["bash", "egs/emodb/ser1/run.sh", "--stage", "1"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 1
    assert "run it from its recipe directory: cd egs/emodb/ser1 && ./run.sh" in proc.stderr
    assert "No such file" not in proc.stderr


def test_a_recipe_help_shows_the_recipe_values(tmp_path: Path):
    """`./run.sh --help` lists the stage script's options with the values in force: the recipe's own (marked
    *) where its run.sh sets them, the script's defaults elsewhere."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run(["./run.sh", "--help"], cwd=ROOT / "egs/emodb/ser1", capture_output=True, text=True,
                          env=env)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^  --feats_type ssl_functionals \*", proc.stdout, re.M)
    assert re.search(r"^  --ser_config conf/train_whisper_probe.yaml \*", proc.stdout, re.M)
    assert re.search(r"^  --protocol \"\" +loso", proc.stdout, re.M)  # not set by the recipe: the default
    assert "conf/train.yaml" not in proc.stdout  # the template's default config, which Emo-DB does not have
