"""Checks shared by the scoring tools before they trust a decode directory.

- :func:`unique_dirs`: a list of decode directories naming one directory twice
  (the same resolved path) would count it twice; refused.
- :func:`read_scores_json`: the ``scores.json`` a decode writes; a missing or
  malformed file is a :class:`DataDirError` naming it.
- :func:`check_fresh`: a decode records the checkpoint it used
  (``"checkpoint"`` in ``scores.json``); output older than that checkpoint
  was written by an earlier model (a failed re-decode left it in place) and is
  refused, naming both files. A checkpoint that no longer exists at the
  recorded path cannot be compared and is not judged.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

from speechser.io.datadir import DataDirError


def unique_dirs(dirs: Iterable[Path | str], what: str = "decode directory") -> List[Path]:
    """``dirs`` as paths; the same directory given twice (after resolving) is a :class:`DataDirError`."""
    seen: Dict[Path, str] = {}
    out: List[Path] = []
    for d in dirs:
        key = Path(d).resolve()
        if key in seen:
            raise DataDirError(
                f"{what} '{d}' is given twice (also as '{seen[key]}', both {key}); "
                "each would be counted again: list every directory once"
            )
        seen[key] = str(d)
        out.append(Path(d))
    return out


def read_scores_json(decode_dir: Path | str, required: bool = True) -> Optional[Dict[str, Any]]:
    """``decode_dir/scores.json`` as a dict; missing (when ``required``) or malformed: a :class:`DataDirError`."""
    path = Path(decode_dir) / "scores.json"
    if not path.is_file():
        if required:
            raise DataDirError(f"{path}: no such file (the decode of {decode_dir} did not finish; decode again)")
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataDirError(f"{path}: cannot read it as JSON ({err}); decode again") from None
    if not isinstance(meta, dict):
        raise DataDirError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    return meta


def _when(t: float) -> str:
    return datetime.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def check_fresh(decode_dir: Path | str, outputs: Sequence[str] = ("scores.json",),
                meta: Optional[Dict[str, Any]] = None) -> None:
    """Refuse ``decode_dir`` when any of its ``outputs`` is older than the checkpoint its ``scores.json``
    records (the output cannot come from that model)."""
    d = Path(decode_dir)
    if meta is None:
        meta = read_scores_json(d, required=False)
    ckpt = (meta or {}).get("checkpoint")
    if not ckpt:
        return
    ckpt_path = Path(str(ckpt))
    if not ckpt_path.is_file():
        return
    model_time = ckpt_path.stat().st_mtime
    for name in outputs:
        out = d / name
        if out.is_file() and out.stat().st_mtime < model_time:
            raise DataDirError(
                f"{out} (written {_when(out.stat().st_mtime)}) is older than the checkpoint it claims to come "
                f"from, {ckpt_path} (modified {_when(model_time)}): it is the output of an earlier model "
                "(did the last decode fail?); decode again"
            )
