"""speechser-make-folds: cross-validation folds of a data directory as train/valid/test data directories."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

from speechser.data.folds import (
    VALID_RULES,
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
                    "losess: the same with sessions (utt2session, e.g. IEMOCAP's 5), valid = one speaker of "
                    "the next session; "
                    "randomK: stratified random K folds (seeded), valid = a stratified fraction of the other "
                    "K - 1 parts; "
                    "split: the corpus's own partition (utt2split, e.g. MSP-Podcast's), one fold fold1 with "
                    "train/valid/test = the utterances of --train-split/--valid-split/--test-split.",
    )
    p.add_argument("data_dir")
    p.add_argument("out_dir")
    p.add_argument("--protocol", required=True, help="loso, losess, random<K> (e.g. random10) or split")
    p.add_argument("--label-file", default="utt2emo", help="labels to stratify random folds by")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--valid", choices=VALID_RULES, default=None,
                   help="the validation part: next (the next speaker, session or part, whole), speaker (one "
                        "speaker of the next session), fraction (--valid-fraction of the training utterances, "
                        "stratified); default: next for loso, speaker for losess, fraction for randomK")
    p.add_argument("--valid-fraction", type=float, default=0.1, help="with --valid fraction (default 0.1)")
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
            valid = a.valid or ("next" if a.protocol == "loso" else "speaker")
            folds = leave_one_speaker_out(read_kv(src / ("utt2spk" if a.protocol == "loso" else "utt2session")),
                                          valid=valid, utt2label=labels, valid_fraction=a.valid_fraction,
                                          seed=a.seed, group="speaker" if a.protocol == "loso" else "session",
                                          utt2speaker=read_kv(src / "utt2spk") if valid == "speaker" else None)
        elif a.protocol.startswith("random") and a.protocol[6:].isdigit():
            valid = a.valid or "fraction"
            # without the label file, read_kv's error names it
            folds = stratified_kfold(labels if labels is not None else read_kv(src / a.label_file),
                                     int(a.protocol[6:]), a.seed, valid, a.valid_fraction)
        elif a.protocol == "split":
            valid = "the corpus's own"
            if not (src / "utt2split").is_file():
                raise DataDirError(f"{src}/utt2split: no such file (--protocol split reads each utterance's "
                                   f"split from it: '<utt> Train', '<utt> Development', ...)")
            try:
                folds = given_split(read_kv(src / "utt2split"), a.train_split, a.valid_split, a.test_split)
            except ValueError as err:
                raise ValueError(f"{src}/utt2split: {err}") from None
        else:
            raise ValueError(f"unknown protocol '{a.protocol}' (loso, losess, random<K>, split)")
        n = len(folds[0].train) + len(folds[0].valid) + len(folds[0].test)
        logging.info("validation: %s; fold1 trains on %d of %d utterances (%.0f %%), validates on %d", valid,
                     len(folds[0].train), n, 100 * len(folds[0].train) / n, len(folds[0].valid))
        warnings = check_folds(folds, labels, protocol=a.protocol)
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
