"""speechser-make-folds: cross-validation folds of a data directory as train/valid/test data directories."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

from speechser.data.folds import (
    check_folds,
    given_split,
    leave_one_speaker_out,
    stratified_kfold,
    write_feats_fingerprint,
)
from speechser.io.datadir import DataDirError, read_kv, subset_data_dir
from speechser.log import log_command_line, setup_logging


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="speechser-make-folds",
        description="Write <out>/foldK/{train,valid,test} data directories. "
                    "loso: test = speaker K, valid = the next speaker, train = the rest; "
                    "losess: the same with sessions (utt2session, e.g. IEMOCAP's 5); "
                    "randomK: stratified random K folds (seeded), valid = the next fold; "
                    "split: the corpus's own partition (utt2split, e.g. MSP-Podcast's), one fold fold1 with "
                    "train/valid/test = the utterances of --train-split/--valid-split/--test-split.",
    )
    p.add_argument("data_dir")
    p.add_argument("out_dir")
    p.add_argument("--protocol", required=True, help="loso, losess, random<K> (e.g. random10) or split")
    p.add_argument("--label-file", default="utt2emo", help="labels to stratify random folds by")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-split", default="Train", help="split: the utt2split name of the training part")
    p.add_argument("--valid-split", default="Development", help="split: the utt2split name of the valid part")
    p.add_argument("--test-split", default="Test1", help="split: the utt2split name of the test part")
    a = p.parse_args(argv)
    setup_logging()
    log_command_line()
    src = Path(a.data_dir)
    try:
        labels = read_kv(src / a.label_file) if (src / a.label_file).is_file() else None
        if a.protocol in ("loso", "losess"):
            folds = leave_one_speaker_out(read_kv(src / ("utt2spk" if a.protocol == "loso" else "utt2session")))
        elif a.protocol.startswith("random") and a.protocol[6:].isdigit():
            # without the label file, read_kv's error names it
            folds = stratified_kfold(labels if labels is not None else read_kv(src / a.label_file),
                                     int(a.protocol[6:]), a.seed)
        elif a.protocol == "split":
            if not (src / "utt2split").is_file():
                raise DataDirError(f"{src}/utt2split: no such file (--protocol split reads each utterance's "
                                   f"split from it: '<utt> Train', '<utt> Development', ...)")
            try:
                folds = given_split(read_kv(src / "utt2split"), a.train_split, a.valid_split, a.test_split)
            except ValueError as err:
                raise ValueError(f"{src}/utt2split: {err}") from None
        else:
            raise ValueError(f"unknown protocol '{a.protocol}' (loso, losess, random<K>, split)")
        warnings = check_folds(folds, labels)
        for w in warnings:
            logging.warning("%s", w)
        for fold in folds:
            for part in ("train", "valid", "test"):
                subset_data_dir(src, Path(a.out_dir) / fold.name / part, utt_list=getattr(fold, part))
                # the archives feats.scp points into, so that training on features rebuilt since is refused
                write_feats_fingerprint(Path(a.out_dir) / fold.name / part)
    except (DataDirError, ValueError) as err:
        print(f"speechser-make-folds: error: {err}", file=sys.stderr)
        return 1
    print(f"speechser-make-folds: {len(folds)} {a.protocol} folds in {a.out_dir}"
          + (f" ({len(warnings)} warning(s) above)" if warnings else ""))
    return 0


if __name__ == "__main__":
    import sys as _sys

    _sys.exit(main())
