"""What the recipe tests and the release-layout fixtures share: a shell runner whose failure shows the
output, a ``key value`` file reader, and Emo-DB's facts from the Emo-DB recipe's own preparation script."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path
from typing import Dict, Tuple

ROOT = Path(__file__).resolve().parents[2]


def sh(args, cwd, env, check=True, timeout=900) -> subprocess.CompletedProcess:
    """Run ``args``; with ``check`` a non-zero exit fails the test with the end of its stdout and stderr."""
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def kv(path: Path) -> Dict[str, str]:
    """A ``key value`` file as a dict (an empty value where a line has none)."""
    return dict(ln.split(maxsplit=1) if " " in ln else (ln, "") for ln in path.read_text().splitlines())


def emodb_facts() -> Tuple[Dict[str, str], Dict[str, str]]:
    """Speaker genders and sentence texts of Emo-DB, from the Emo-DB recipe's own preparation script."""
    spec = importlib.util.spec_from_file_location("prepare_emodb", ROOT / "egs/emodb/ser1/local/prepare_emodb.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.GENDER, module.SENTENCES


def copy_recipe(src: Path, dst_root: Path) -> Path:
    """A copy of the recipe ``src`` (``egs/<corpus>/<task>``) as ``dst_root/<corpus>/<task>``: its links
    (stage script, utils/) point at the project's, everything else is copied, so a test's runs leave
    the project's recipe untouched."""
    import shutil

    rdir = dst_root / src.parent.name / src.name
    rdir.mkdir(parents=True)
    for p in src.iterdir():
        if p.name in ("data", "dump", "exp", "RESULTS.md"):
            continue
        if p.is_symlink():
            (rdir / p.name).symlink_to(p.resolve())
        elif p.is_dir():
            shutil.copytree(p, rdir / p.name)
        else:
            shutil.copy(p, rdir / p.name)
    return rdir


def small_an4_recipe(dst_root: Path, sizes: str) -> Path:
    """A copy of ``egs/an4/asr1`` under ``dst_root`` whose data preparation is the real one followed by the first
    N utterances of each set: ``sizes`` as ``"train_nodev:60 train_dev:20 test:20"``."""
    rdir = copy_recipe(ROOT / "egs/an4/asr1", dst_root)
    (rdir / "local/data.sh").write_text(
        "#!/usr/bin/env bash\nset -euo pipefail\n. ./db.sh\npython3 local/prepare_an4.py \"${AN4}\" data_full\n"
        f"for s in {sizes}; do\n"
        "  rm -rf data/${s%%:*}; utils/subset_data_dir.sh --first ${s##*:} data_full/${s%%:*} data/${s%%:*}\n"
        "done\n")
    return rdir
