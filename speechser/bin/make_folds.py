"""speechser-make-folds: cross-validation folds of a data directory as train/valid/test data directories."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from speechser.data.folds import leave_one_speaker_out, stratified_kfold
from speechser.io.datadir import DataDirError, read_kv, subset_data_dir
from speechser.log import log_command_line, setup_logging


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="speechser-make-folds",
        description="Write <out>/foldK/{train,valid,test} data directories. "
                    "loso: test = speaker K, valid = the next speaker, train = the rest; "
                    "losess: the same with sessions (utt2session, e.g. IEMOCAP's 5); "
                    "randomK: stratified random K folds (seeded), valid = the next fold.",
    )
    p.add_argument("data_dir")
    p.add_argument("out_dir")
    p.add_argument("--protocol", required=True, help="loso, losess, or random<K> (e.g. random10)")
    p.add_argument("--label-file", default="utt2emo", help="labels to stratify random folds by")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    setup_logging()
    log_command_line()
    src = Path(a.data_dir)
    try:
        if a.protocol in ("loso", "losess"):
            folds = leave_one_speaker_out(read_kv(src / ("utt2spk" if a.protocol == "loso" else "utt2session")))
        elif a.protocol.startswith("random") and a.protocol[6:].isdigit():
            folds = stratified_kfold(read_kv(src / a.label_file), int(a.protocol[6:]), a.seed)
        else:
            raise ValueError(f"unknown protocol '{a.protocol}' (loso, losess, random<K>)")
        for fold in folds:
            for part in ("train", "valid", "test"):
                subset_data_dir(src, Path(a.out_dir) / fold.name / part, utt_list=getattr(fold, part))
    except (DataDirError, ValueError) as err:
        print(f"speechser-make-folds: error: {err}", file=sys.stderr)
        return 1
    print(f"speechser-make-folds: {len(folds)} {a.protocol} folds in {a.out_dir}")
    return 0


if __name__ == "__main__":
    import sys as _sys

    _sys.exit(main())
