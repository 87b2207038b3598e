"""Compare cross-validation experiments fold by fold (an ablation table).

Each row is the ``scores.tsv`` that scoring writes (``fold n ua wa macro_f1``,
one line per fold). Rows are comparable only when they were scored on the same
folds with the same number of test utterances each, which
:func:`read_fold_scores` / :func:`compare_rows` check. The table gives, per
row, the mean and sample standard deviation (``n - 1``; see
:func:`speechser.metrics.classification.mean_and_sample_std`) over folds of UA and WA, the change of
the mean UA against the first row, and on how many folds the row's UA beats
the first row's.

A row may be several runs of one system (training seeds): :func:`read_seed_scores` averages each fold's
UA and WA over the runs, so the row's mean and fold statistics are those of the seed-averaged folds, and
keeps each run's mean UA, which the table shows as the spread across seeds (their sample std, ``n - 1``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from speechser.io.datadir import DataDirError
from speechser.metrics.classification import mean_and_sample_std

COLUMNS = ("fold", "n", "ua", "wa", "macro_f1")


@dataclass
class Row:
    name: str
    path: Path
    folds: Dict[str, Tuple[int, float, float]]  # fold -> (n, ua, wa)
    #: With several runs (seeds): each run's mean UA over folds; empty for a single run.
    seed_uas: Tuple[float, ...] = ()


def read_fold_scores(name: str, path: Path | str) -> Row:
    """Read one ``scores.tsv``; a malformed line names the file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataDirError(f"{path}: no such scores file (row '{name}')")
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or tuple(lines[0].split("\t")) != COLUMNS:
        raise DataDirError(f"{path}:1: expected the header {' '.join(COLUMNS)}")
    folds: Dict[str, Tuple[int, float, float]] = {}
    for i, line in enumerate(lines[1:], start=2):
        parts = line.split("\t")
        try:
            if len(parts) != len(COLUMNS):
                raise ValueError
            scores = (int(parts[1]), float(parts[2]), float(parts[3]))
        except ValueError:
            raise DataDirError(f"{path}:{i}: expected {len(COLUMNS)} tab-separated fields, got '{line}'") from None
        if parts[0] in folds:
            raise DataDirError(f"{path}:{i}: fold '{parts[0]}' appears twice")
        folds[parts[0]] = scores
    if not folds:
        raise DataDirError(f"{path}: no folds")
    return Row(name, path, folds)


def read_seed_scores(name: str, paths: Sequence[Path | str]) -> Row:
    """Several runs of one system (one ``scores.tsv`` each): each fold's UA and WA averaged over the runs.
    The runs must cover the same folds with the same test utterance counts."""
    runs = [read_fold_scores(name, p) for p in paths]
    if len(runs) == 1:
        return runs[0]
    first = runs[0]
    for r in runs[1:]:
        if {k: v[0] for k, v in r.folds.items()} != {k: v[0] for k, v in first.folds.items()}:
            raise DataDirError(f"{r.path}: its folds or test utterance counts differ from {first.path}'s "
                               f"(row '{name}': runs of one system on the same folds)")
    folds = {k: (n, sum(r.folds[k][1] for r in runs) / len(runs), sum(r.folds[k][2] for r in runs) / len(runs))
             for k, (n, _, _) in first.folds.items()}
    seed_uas = tuple(sum(v[1] for v in r.folds.values()) / len(r.folds) for r in runs)
    return Row(name, Path(",".join(str(r.path) for r in runs)), folds, seed_uas)


def compare_rows(rows: List[Row]) -> List[Dict[str, float]]:
    """Per row: ua/wa mean and sample std (``n - 1``; NaN for one fold) as fractions, ``d_ua`` against row 0,
    ``wins`` (folds with UA above row 0's)."""
    if not rows:
        raise ValueError("nothing to compare")
    base = rows[0]
    for r in rows[1:]:
        if set(r.folds) != set(base.folds):
            raise DataDirError(f"{r.path}: folds {sorted(r.folds)} differ from {base.path}'s {sorted(base.folds)}")
        for k, (n, _, _) in r.folds.items():
            if n != base.folds[k][0]:
                raise DataDirError(f"{r.path}: {k} has {n} test utterances, {base.path} has {base.folds[k][0]}")
    out = []
    for r in rows:
        keys = sorted(r.folds)
        ua_m, ua_s = mean_and_sample_std([r.folds[k][1] for k in keys])
        wa_m, wa_s = mean_and_sample_std([r.folds[k][2] for k in keys])
        wins = sum(r.folds[k][1] > base.folds[k][1] for k in keys)
        out.append({"ua": ua_m, "ua_std": ua_s, "wa": wa_m, "wa_std": wa_s,
                    "d_ua": ua_m - (out[0]["ua"] if out else ua_m), "wins": wins,
                    "folds": len(keys), "utts": sum(r.folds[k][0] for k in keys)})
    return out


def _pct(std: float) -> str:
    """A fraction as a percentage with 2 decimals; ``n/a`` for the NaN std of a single fold."""
    return "n/a" if math.isnan(std) else f"{100 * std:.2f}"


def comparison_markdown(rows: List[Row], title: str, command: str = "", notes: str = "") -> str:
    """The ablation table as a RESULTS.md section."""
    stats = compare_rows(rows)
    lines = [f"## {title}", ""]
    if command:
        lines.append(f"- command: `{command}`")
    lines += [f"- {len(rows)} rows, each on the same {stats[0]['folds']} folds ({stats[0]['utts']} test utterances); "
              "mean ± sample standard deviation (n − 1) over folds", ""]
    if notes:
        lines += [notes.rstrip(), ""]
    seeded = any(r.seed_uas for r in rows)
    lines += ["| row | UA % | WA % | Δ UA vs row 1 | folds with higher UA than row 1 |"
              + (" runs: UA % of each (std across runs) |" if seeded else "") + " scores |",
              "| --- | --- | --- | --- | --- |" + (" --- |" if seeded else "") + " --- |"]
    for r, s in zip(rows, stats):
        delta = "—" if r is rows[0] else f"{100 * s['d_ua']:+.2f}"
        wins = "—" if r is rows[0] else f"{s['wins']} / {s['folds']}"
        runs = ""
        if seeded:
            runs = " 1 |"
            if r.seed_uas:
                spread = mean_and_sample_std(list(r.seed_uas))[1]
                runs = (f" {len(r.seed_uas)}: {' / '.join(f'{100 * u:.2f}' for u in r.seed_uas)} "
                        f"(± {_pct(spread)}) |")
        lines.append(f"| {r.name} | {100 * s['ua']:.2f} ± {_pct(s['ua_std'])} | "
                     f"{100 * s['wa']:.2f} ± {_pct(s['wa_std'])} | {delta} | {wins} |{runs} `{r.path}` |")
    return "\n".join(lines) + "\n"
