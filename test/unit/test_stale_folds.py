"""Folds whose feature archives were rebuilt (the feature stage run again without re-making the folds): the
fold's feats.scp then points at byte offsets of the new archives, i.e. at other utterances' features or at
none. Training, decoding and packing on such a fold must refuse, naming the fold, the archive and the stage
to re-run; folds made afresh, and data directories made without the record, are read as before."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import List

import pytest

from speechser.io.datadir import DataDirError, read_kv

from conftest import write_lines

#: The words every refusal must hold: what to do (the recipe stage that makes the folds).
FIX = "re-make the folds: run.sh --stage 4"


def _make_folds(run_main, src: Path, out: Path) -> None:
    proc = run_main("make_folds", src, out, "--protocol", "loso")
    assert proc.returncode == 0, proc.stderr


def _rebuild_features(src: Path, how: str) -> None:
    """Stage 3 once more over changed data: ``reorder``: the same utterances in another order (an archive of
    the same size, whose old offsets land on other utterances' matrices: read silently); ``drop``: one
    utterance fewer (stage 2 dropped it), the rest in another order; ``bins``: other feature options (80 mel
    bins: the old offsets land inside matrices)."""
    from speechser.features.extract import extract_fbank
    from speechser.features.fbank import FbankOptions

    ark = src / "raw.ark"
    before = ark.stat().st_mtime_ns
    keys = sorted(read_kv(src / "utt2spk"))
    if how == "reorder":
        keys = list(reversed(keys))
    if how == "drop":
        keys = list(reversed(keys[1:]))
        for name in ("utt2spk", "utt2emo", "text", "wav.scp"):
            table = read_kv(src / name, allow_empty_value=True)
            write_lines(src / name, {k: v for k, v in table.items() if k in keys})
    extract_fbank(src, src / "raw", keys=keys, opts=FbankOptions(num_mel_bins=80 if how == "bins" else 40))
    write_lines(src / "feats.scp", read_kv(src / "raw.scp"))
    write_lines(src / "utt2num_frames", read_kv(src / "raw.num_frames"))
    if ark.stat().st_mtime_ns == before:  # a file system with coarse times: the rebuild comes later in real life
        os.utime(ark, ns=(before + 2 * 10**9, before + 2 * 10**9))


def _train_args(fold: Path, seed: int) -> List[str]:
    return ["--data.train_dir", str(fold / "train"), "--data.valid_dir", str(fold / "valid"),
            "--data.label_list", str(fold / "train" / "emotions.txt"), "--data.cmvn_type", "none",
            "--data.max_frames", "300", "--model.conf.channels", "16", "--model.conf.embed_dim", "8",
            "--trainer.max_epochs", "1", "--trainer.keep_nbest", "1", "--trainer.average_nbest", "1",
            "--seed", str(seed)]


def _train(fold: Path, exp: Path, seed: int) -> None:
    from speechser.tasks.ser import load_ser_config, train_ser

    assert train_ser(load_ser_config(None, _train_args(fold, seed)), exp)["epochs"] == 1


def _trained_fold(make_feats_dir, run_main, tmp_path: Path, seed: int) -> tuple:
    """Features of 3 speakers, their LOSO folds, and an experiment trained on fold 1:
    ``(features dir, folds dir, fold 1, experiment dir)``. Four utterances a speaker, so that the folds made
    again after one is dropped still train every class (the fold stage refuses folds that cannot)."""
    src = make_feats_dir(n_spk=3, n_utt=4, name="all")
    folds = tmp_path / "folds"
    _make_folds(run_main, src, folds)
    fold = folds / "fold1"
    exp = tmp_path / "exp"
    _train(fold, exp, seed)
    return src, folds, fold, exp


def _assert_refusal(err: BaseException, fold_part: Path, src: Path) -> None:
    msg = str(err)
    assert str(fold_part) in msg and str(src / "raw.ark") in msg and FIX in msg, msg


def test_make_folds_records_the_feature_archives(make_feats_dir, run_main, tmp_path: Path):
    src = make_feats_dir(n_spk=3, n_utt=2, name="all")
    _make_folds(run_main, src, tmp_path / "folds")
    for part in ("train", "valid", "test"):
        record = json.loads((tmp_path / "folds/fold1" / part / "feats_archives.json").read_text())
        (entry,) = record["archives"].values()
        ark = src / "raw.ark"
        assert entry["path"] == str(ark.resolve()) and entry["size"] == ark.stat().st_size
        assert entry["mtime_ns"] == ark.stat().st_mtime_ns


@pytest.mark.parametrize("how", ["reorder", "drop", "bins"])
def test_training_decoding_and_packing_refuse_folds_whose_features_were_rebuilt(
        make_feats_dir, run_main, tmp_path: Path, train_seed, how, capsys):
    from speechser.bin.train_ser import main as train_main
    from speechser.pack.packed_ser import pack_ser
    from speechser.tasks.asr import decode_asr
    from speechser.tasks.ser import infer_ser, load_ser_config, train_ser

    src, folds, fold, exp = _trained_fold(make_feats_dir, run_main, tmp_path, train_seed)
    # untouched: stages 5 to 8 work on the folds
    assert 0.0 <= infer_ser(exp, None, fold / "test", tmp_path / "decode")["ua"] <= 1.0
    assert pack_ser(exp, tmp_path / "m.tar", min_duration=0.0).is_file()

    _rebuild_features(src, how)  # stages 1-3 again, stage 4 not

    with pytest.raises(DataDirError) as err:  # training (a fresh experiment)
        train_ser(load_ser_config(None, _train_args(fold, train_seed)), tmp_path / "exp2")
    _assert_refusal(err.value, fold / "train", src)
    assert not (tmp_path / "exp2" / "checkpoint.pt").exists()
    assert train_main(["--exp-dir", str(tmp_path / "exp3"), *_train_args(fold, train_seed)]) == 1
    assert FIX in capsys.readouterr().err
    with pytest.raises(DataDirError) as err:  # decoding the fold's test set with the model trained before
        infer_ser(exp, None, fold / "test", tmp_path / "decode2")
    _assert_refusal(err.value, fold / "test", src)
    assert not (tmp_path / "decode2").exists()
    with pytest.raises(DataDirError) as err:  # ASR decoding checks its data directory the same way
        decode_asr(tmp_path / "no_asr_exp", None, fold / "test", tmp_path / "decode_asr")
    _assert_refusal(err.value, fold / "test", src)
    with pytest.raises(DataDirError) as err:  # packing (the training set's CMVN and front-end are read)
        pack_ser(exp, tmp_path / "m2.tar", min_duration=0.0)
    _assert_refusal(err.value, fold / "train", src)
    assert not (tmp_path / "m2.tar").exists()

    # the fix the message names: the folds made again from the rebuilt features are trained and decoded
    _make_folds(run_main, src, folds)
    _train(fold, tmp_path / "exp4", train_seed)
    assert 0.0 <= infer_ser(tmp_path / "exp4", None, fold / "test", tmp_path / "decode4")["ua"] <= 1.0


def test_data_without_the_record_is_read_as_before(make_feats_dir, run_main, tmp_path: Path):
    """Folds made by hand, or before the record existed, are not checked (there is nothing to check them by)."""
    from speechser.data.folds import check_experiment_folds, check_fold_features

    src = make_feats_dir(n_spk=3, n_utt=2, name="all")
    _make_folds(run_main, src, tmp_path / "folds")
    part = tmp_path / "folds/fold1/train"
    check_fold_features(part, "", None, src, tmp_path / "nowhere")
    _rebuild_features(src, "drop")
    with pytest.raises(DataDirError, match="run.sh --stage 4"):
        check_fold_features(part)
    (part / "feats_archives.json").unlink()
    check_fold_features(part)
    check_experiment_folds(tmp_path / "no_experiment")  # nothing to read: loading the experiment says so


def test_packing_a_model_of_rebuilt_folds_is_the_same_clear_error(make_feats_dir, run_main, tmp_path: Path,
                                                                  train_seed, capsys):
    """Packing reads the training set's features (its pooled CMVN statistics): on a stale fold that was a
    UnicodeDecodeError from kaldiio (speechser-pack: a traceback)."""
    from speechser.bin.pack import main as pack_main
    from speechser.pack.packed_ser import pack_ser
    from speechser.tasks.ser import load_ser_config, train_ser

    src = make_feats_dir(n_spk=3, n_utt=2, name="all")
    _make_folds(run_main, src, tmp_path / "folds")
    fold = tmp_path / "folds/fold1"
    exp = tmp_path / "exp"
    args = _train_args(fold, train_seed)
    args[args.index("--data.cmvn_type") + 1] = "speaker"  # packing pools the training set's statistics
    train_ser(load_ser_config(None, args), exp)
    _rebuild_features(src, "bins")
    with pytest.raises(DataDirError) as err:
        pack_ser(exp, tmp_path / "m.tar", min_duration=0.0)
    _assert_refusal(err.value, fold / "train", src)
    assert pack_main(["--exp-dir", str(exp), "--out", str(tmp_path / "m.tar"), "--min-duration", "0"]) == 1
    assert FIX in capsys.readouterr().err and not (tmp_path / "m.tar").exists()


def test_resuming_a_run_on_folds_made_again_from_rebuilt_features_is_a_named_difference(
        make_feats_dir, run_main, tmp_path: Path, train_seed):
    """Stages 3 and 4 both re-run, then stage 5 resumes an experiment: the folds are consistent again, but the
    run's checkpoints were trained on the old features; resuming refuses and names that."""
    from speechser.tasks.ser import load_ser_config, train_ser
    from speechser.train.experiment import ExperimentError

    src, folds, fold, exp = _trained_fold(make_feats_dir, run_main, tmp_path, train_seed)
    _rebuild_features(src, "reorder")
    _make_folds(run_main, src, folds)
    args = _train_args(fold, train_seed)
    args[args.index("--trainer.max_epochs") + 1] = "2"
    with pytest.raises(ExperimentError, match=r"data\.train_dir: the features of .* were rebuilt"):
        train_ser(load_ser_config(None, args), exp)
