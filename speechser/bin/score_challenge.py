"""speechser-score-challenge: the VLSP 2025 ASR-SER scores (WER, 2-class balanced ACC_SER,
Final = 0.7 (1 - WER) + 0.3 ACC_SER) of an ASR decode and an SER decode of the same test set."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

from speechser.config import ConfigError
from speechser.io.datadir import DataDirError
from speechser.metrics.report import add_report_options, publish_report


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="speechser-score-challenge", description=__doc__)
    p.add_argument("--asr-dir", required=True, help="ASR decode directory (text, scores.json)")
    p.add_argument("--ser-dir", required=True, help="SER decode directory (ref, hyp)")
    p.add_argument("--label-map", required=True, help="YAML: corpus_label: neutral|negative")
    p.add_argument("--out", help="scores JSON (default: <ser-dir>/challenge_scores.json)")
    add_report_options(p, title="VLSP 2025 ASR-SER scores", tag="challenge")
    a = p.parse_args(argv)
    from speechser.metrics.challenge import challenge_report, score_challenge

    try:
        scores = score_challenge(a.asr_dir, a.ser_dir, a.label_map)
    except (DataDirError, ConfigError, ValueError) as err:
        print(f"speechser-score-challenge: error: {err}", file=sys.stderr)
        return 1
    out = Path(a.out) if a.out else Path(a.ser_dir) / "challenge_scores.json"
    out.write_text(json.dumps(scores, indent=1))
    report = challenge_report(scores, a.title, a.command, a.notes)
    publish_report(report, a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
