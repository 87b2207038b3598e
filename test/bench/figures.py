"""The machine-readable record of a benchmark run, which ``test/bench/summarize.py`` gathers into
``test/bench/RESULTS.md``.

Each bench script, where it writes its markdown, also writes ``test/bench/figures/<bench>.json``::

    {"bench": "knn", "date": "2026-11-23", "environment": "python 3.11.7, torch ..., 2 thread(s)",
     "command": "python test/bench/bench_knn.py --sizes 100000", "detail": "RESULTS_knn.md",
     "figures": [{"what": "...", "unit": "ms / utterance", "speechser": 6.1, "peers": {"faiss": 2.7},
                  "higher_is_better": false, "note": "..."}]}

``speechser`` is null where speechser's own number was not measured; a peer's value is null where that peer
is known but was not measured in this run (e.g. an optional package not installed).
"""

from __future__ import annotations

import datetime
import json
import math
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[2]
FIGURES_DIR = ROOT / "test/bench/figures"


def figure(what: str, unit: str, speechser: Optional[float], peers: Optional[Dict[str, Optional[float]]] = None,
           higher_is_better: bool = True, note: Optional[str] = None) -> dict:
    """One figure: speechser's value and the peers' values measured in the same run."""
    out = {"what": what, "unit": unit, "speechser": None if speechser is None else float(speechser),
           "peers": {k: None if v is None else float(v) for k, v in (peers or {}).items()},
           "higher_is_better": bool(higher_is_better)}
    if note:
        out["note"] = note
    return out


def command_line(script: str, argv: Optional[Sequence[str]] = None) -> str:
    """``python <script relative to the repository root> <arguments>``: the command that made the figures."""
    path = Path(script).resolve()
    try:
        rel = path.relative_to(ROOT).as_posix()
    except ValueError:
        rel = path.as_posix()
    return " ".join(["python", rel, *(sys.argv[1:] if argv is None else argv)])


def _check_numbers(figures: List[dict]) -> None:
    for f in figures:
        for who, v in [("speechser", f["speechser"]), *f["peers"].items()]:
            if v is not None and not math.isfinite(v):
                raise ValueError(f"figure {f['what']!r}: {who}'s value {v} is not a finite number")


def write_figures(bench: str, environment: str, detail: str, figures: List[dict], script: str,
                  figures_dir: Optional[Path] = None, argv: Optional[Sequence[str]] = None,
                  date: Optional[str] = None) -> Path:
    """Write ``<figures_dir>/<bench>.json`` (default ``test/bench/figures``); returns its path.

    ``detail`` is the file name of the bench's markdown, ``script`` its ``__file__``, ``argv`` its
    arguments (default ``sys.argv[1:]``).
    """
    _check_numbers(figures)
    record = {"bench": bench, "date": date or datetime.date.today().isoformat(), "environment": environment,
              "command": command_line(script, argv), "detail": Path(detail).name, "figures": figures}
    out_dir = Path(figures_dir) if figures_dir is not None else FIGURES_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{bench}.json"
    path.write_text(json.dumps(record, indent=2, allow_nan=False) + "\n")
    return path
