"""speechser-corrupt-transcripts: corrupt a seeded fraction of a data directory's transcripts
(see :mod:`speechser.filter.corrupt`); ``--score`` instead scores a filter round against the list."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

from speechser.filter.corrupt import corrupt_transcripts, detection_scores, read_corrupted_list
from speechser.io.datadir import DataDirError, check_not_nested, copy_data_dir, read_kv, write_kv


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="speechser-corrupt-transcripts", description=__doc__)
    p.add_argument("src", help="data directory (corrupt), or a filter round's <kept>.utt_stats.tsv (--score)")
    p.add_argument("dst", help="new data directory (corrupt), or the corrupted list (--score)")
    p.add_argument("--fraction", type=float, default=0.15)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--score", action="store_true", help="print the filter's precision/recall as JSON")
    a = p.parse_args(argv)
    try:
        if a.score:
            s = detection_scores(a.src, read_corrupted_list(a.dst))
            print(json.dumps({"utterances": s.utterances, "corrupted": s.corrupted, "flagged": s.flagged,
                              "true_positives": s.true_positives, "precision": s.precision, "recall": s.recall}))
            return 0
        src, dst = Path(a.src), Path(a.dst)
        check_not_nested(src, dst, "the corrupted copy")
        texts = read_kv(src / "text")
        new, corrupted = corrupt_transcripts(texts, a.fraction, a.seed)
        copy_data_dir(src, dst)
        write_kv(dst / "text", new)
        (dst / "corrupted").write_text("".join(f"{g} {k}\n" for g, k in sorted(corrupted.items())))
    except (DataDirError, ValueError) as err:
        print(f"speechser-corrupt-transcripts: error: {err}", file=sys.stderr)
        return 1
    n_utt = sum(1 for k in texts if k in new and new[k] != texts[k])
    print(f"speechser-corrupt-transcripts: {len(corrupted)} recordings ({n_utt} utterances) corrupted -> "
          f"{dst}/text; list in {dst}/corrupted")
    return 0


if __name__ == "__main__":
    sys.exit(main())
