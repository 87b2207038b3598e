"""The training-loop data filter: decode -> filter -> retrain, round after round.

Round ``r`` (1, 2, ...) decodes the *whole* training set with the model of
round ``r - 1`` (round 0 is the ASR experiment given), filters it with
:func:`speechser.filter.data_filter.filter_data_dir`, and retrains on the
kept set (initialized from the previous round's weights, or from scratch),
then decodes the valid and test sets. The loop ends after ``max_rounds``, or
as soon as the kept set differs from the previous round's by less than
``min_change`` (``|K_r symmetric-difference K_{r-1}| / |K_{r-1}|``, with
``K_0`` the whole training set); a converged round is not retrained.

Layout under ``out_dir``::

    round<r>/data/                   kept data directory (+ data.report.{txt,json}, data.utt_stats.tsv)
    round<r>/decode_train/           the decode of the training set that drove the filter
    round<r>/asr/                    the retrained ASR experiment
    round<r>/asr/decode_<dec>_<set>/ valid and test decodes
    round<r>/times.json              wall seconds of the round's steps (kept when a resumed loop reuses a step)
    rounds.tsv                       round, kept, removed (per category), change, valid/test WER, and the wall
                                     seconds of decoding the training set (``decode_train_s``: CTC greedy or the
                                     configured decoder, with confidences and per-utterance WER), of the filter
                                     itself (``filter_s``) and of the retraining (``retrain_s``, its valid/test
                                     decodes included)
    loop.json                        the resolved loop options
    final_asr                        "<experiment dir> <checkpoint>" of the last trained round
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence

from speechser.config import load_config
from speechser.filter.data_filter import FilterBounds, filter_data_dir
from speechser.io.atomic import write_json_atomic
from speechser.io.datadir import read_kv
from speechser.tasks.asr import decode_asr, load_asr_config, train_asr
from speechser.tasks.experiment_dir import experiment_models, resolve_checkpoint


@dataclass
class FilterLoopConfig:
    bounds: FilterBounds = field(default_factory=FilterBounds)
    max_rounds: int = 3
    min_change: float = 0.02
    #: Decoder whose hypotheses give the WER (the confidence is always the CTC one).
    decoder: str = "ctc_greedy"
    beam: int = 10
    #: Start each round's training from the previous round's weights (else from scratch).
    init_from_previous: bool = True
    #: Overrides of the ASR training config for the retraining, e.g. ["--trainer.max_epochs", "5"].
    train_overrides: List[str] = field(default_factory=list)
    #: Checkpoint file name (in each round's ASR experiment) used for decoding; "" (the default): the model
    #: the retraining wrote, found as every tool finds it (its averaged model ``valid.acc.ave_<n>best.pt``,
    #: whatever ``<n>`` the epochs allowed, else its best epoch).
    checkpoint_name: str = ""


def load_filter_loop_config(path: Optional[Path | str], overrides: Sequence[str] = ()) -> FilterLoopConfig:
    return load_config(FilterLoopConfig, path, overrides)


def _change(prev: set, cur: set) -> float:
    return len(prev ^ cur) / max(len(prev), 1)


def run_filter_loop(
    conf: FilterLoopConfig,
    asr_exp: Path | str,
    checkpoint: Path | str,
    train_dir: Path | str,
    valid_dir: Path | str,
    test_dirs: Sequence[Path | str],
    out_dir: Path | str,
) -> List[Dict[str, Any]]:
    """Run the loop (see the module docstring); returns the rows of ``rounds.tsv``.

    Rounds already complete in ``out_dir`` (their ASR experiment finished and
    decoded) are reused, so an interrupted loop resumes where it stopped.
    """
    out, asr_exp, train_dir = Path(out_dir), Path(asr_exp), Path(train_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "loop.json").write_text(json.dumps(asdict(conf), indent=1))
    sets = [Path(valid_dir), *map(Path, test_dirs)]

    def decode_sets(exp: Path, ckpt: Path) -> Dict[str, float]:
        wers = {}
        for s in sets:
            dec = exp / f"decode_{conf.decoder}_{s.name}"
            if (dec / "scores.json").is_file():
                wers[s.name] = json.loads((dec / "scores.json").read_text())["wer"]
            else:
                wers[s.name] = decode_asr(exp, ckpt, s, dec, conf.decoder, conf.beam)["wer"]
        return wers

    rows: List[Dict[str, Any]] = []
    prev_exp, prev_ckpt = asr_exp, Path(checkpoint)
    prev_keys = set(read_kv(train_dir / "utt2spk"))
    rows.append({"round": 0, "kept": len(prev_keys), "too_easy": 0, "too_corrupt": 0, "not_decoded": 0,
                 "change": 1.0, **{f"wer_{k}": v for k, v in decode_sets(asr_exp, prev_ckpt).items()},
                 **{c: float("nan") for c in _RoundTimes.COLUMNS}})
    for r in range(1, conf.max_rounds + 1):
        rdir = out / f"round{r}"
        dec_train = rdir / "decode_train"
        times = _RoundTimes(rdir / "times.json")
        if not (dec_train / "confidence").is_file():
            with times.measure("decode_train_s"):
                decode_asr(prev_exp, prev_ckpt, train_dir, dec_train, conf.decoder, conf.beam)
        with times.measure("filter_s"):
            report = filter_data_dir(train_dir, dec_train, rdir / "data", conf.bounds)
        keys = set(read_kv(rdir / "data" / "utt2spk"))
        change = _change(prev_keys, keys)
        row: Dict[str, Any] = {"round": r, "kept": report.kept, "too_easy": report.too_easy,
                               "too_corrupt": report.too_corrupt, "not_decoded": report.not_decoded,
                               "change": change}
        logging.info("filter round %d: kept %d of %d (change %.3f); decoding the training set took %.1f s, "
                     "the filter %.1f s", r, report.kept, report.total, change, times.get("decode_train_s"),
                     times.get("filter_s"))
        if r > 1 and change < conf.min_change:
            logging.info("kept set changed by %.3f < %.3f: the loop has converged", change, conf.min_change)
            rows.append({**row, **{f"wer_{s.name}": float("nan") for s in sets}, **times.columns()})
            break
        exp = rdir / "asr"
        overrides = ["--data.train_dir", str(rdir / "data"), *conf.train_overrides]
        overrides += ["--trainer.init_param", f"[{prev_ckpt}]" if conf.init_from_previous else "[]"]
        train_conf = load_asr_config(prev_exp / "config.yaml", overrides)
        retrain_start = time.time()
        train_asr(train_conf, exp)
        if conf.checkpoint_name:
            ckpt = exp / conf.checkpoint_name
            if not ckpt.is_file():
                raise FileNotFoundError(f"{ckpt}: the retrained model has no such checkpoint (filter.checkpoint_name; "
                                        f"it has {experiment_models(exp)}; leave the key empty for its averaged "
                                        "model)")
        else:
            ckpt = resolve_checkpoint(exp, None, train_conf.trainer)
        wers = decode_sets(exp, ckpt)
        if not times.has("retrain_s"):
            times.set("retrain_s", time.time() - retrain_start)
        rows.append({**row, **{f"wer_{k}": v for k, v in wers.items()}, **times.columns()})
        prev_exp, prev_ckpt, prev_keys = exp, ckpt, keys
        _write_rounds(out / "rounds.tsv", rows)
    _write_rounds(out / "rounds.tsv", rows)
    (out / "final_asr").write_text(f"{prev_exp} {prev_ckpt}\n")
    return rows


class _RoundTimes:
    """Wall seconds of a round's steps, kept in ``round<r>/times.json`` so that a resumed loop, which reuses a
    finished step instead of running it again, still reports what the step took."""

    COLUMNS = ("decode_train_s", "filter_s", "retrain_s")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seconds: Dict[str, float] = json.loads(path.read_text()) if path.is_file() else {}

    def has(self, name: str) -> bool:
        return name in self.seconds

    def get(self, name: str) -> float:
        return self.seconds.get(name, float("nan"))

    def set(self, name: str, value: float) -> None:
        self.seconds[name] = round(value, 2)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path, self.seconds)

    @contextlib.contextmanager
    def measure(self, name: str) -> Iterator[None]:
        start = time.time()
        yield
        self.set(name, time.time() - start)

    def columns(self) -> Dict[str, float]:
        return {c: self.get(c) for c in self.COLUMNS}


def _write_rounds(path: Path, rows: List[Dict[str, Any]]) -> None:
    cols = list(rows[0])
    lines = ["\t".join(cols)]
    for row in rows:
        lines.append("\t".join((f"{row[c]:.1f}" if c.endswith("_s") else f"{row[c]:.4f}")
                               if isinstance(row[c], float) else str(row[c]) for c in cols))
    path.write_text("\n".join(lines) + "\n")


def rounds_markdown(path: Path | str) -> str:
    """``rounds.tsv`` as a markdown table (WER in %, step times in seconds; a step not run is "-")."""
    lines = Path(path).read_text().splitlines()
    cols = lines[0].split("\t")
    names = {"decode_train_s": "decode train (s)", "filter_s": "filter (s)", "retrain_s": "retrain (s)"}
    md = ["| " + " | ".join(names.get(c, c.replace("wer_", "WER ")) for c in cols) + " |", "|" + " --- |" * len(cols)]
    for ln in lines[1:]:
        vals = ln.split("\t")
        cells = [f"{100 * float(v):.2f}" if c.startswith("wer_") and v != "nan" else
                 ("-" if c in names and v == "nan" else v) for c, v in zip(cols, vals)]
        md.append("| " + " | ".join(cells) + " |")
    return "\n".join(md) + "\n"
