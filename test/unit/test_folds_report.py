from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from speechser.data.folds import leave_one_speaker_out, stratified_kfold
from speechser.metrics.report import replace_section, score_decode_dir


def test_loso_folds_partition_speakers():
    utt2spk = {f"{s}_{i}": s for s in "abcde" for i in range(3)}
    folds = leave_one_speaker_out(utt2spk)
    assert [f.name for f in folds] == [f"fold{k}" for k in range(1, 6)]
    for k, f in enumerate(folds):
        spk = lambda us: {utt2spk[u] for u in us}  # noqa: E731
        assert spk(f.test) == {"abcde"[k]} and spk(f.valid) == {"abcde"[(k + 1) % 5]}
        assert len(f.train) == 9 and not set(f.train) & (set(f.test) | set(f.valid))
    assert sorted(u for f in folds for u in f.test) == sorted(utt2spk)
    with pytest.raises(ValueError):
        leave_one_speaker_out({"u1": "a", "u2": "b"})


def test_stratified_kfold_is_seeded_balanced_and_disjoint():
    utt2label = {f"u{i:03d}": ("x" if i < 70 else "y") for i in range(100)}
    folds = stratified_kfold(utt2label, k=10, seed=3)
    assert folds == stratified_kfold(utt2label, k=10, seed=3)
    assert folds != stratified_kfold(utt2label, k=10, seed=4)
    tests = [u for f in folds for u in f.test]
    assert sorted(tests) == sorted(utt2label)
    for f in folds:
        assert Counter(utt2label[u] for u in f.test) == {"x": 7, "y": 3}
        assert not set(f.train) & set(f.test) and not set(f.train) & set(f.valid)
        assert len(f.train) + len(f.valid) + len(f.test) == 100


def test_score_decode_dir_and_results_section(tmp_path: Path):
    d = tmp_path / "fold1" / "decode_test"
    d.mkdir(parents=True)
    (d / "ref").write_text("a ang\nb neu\nc neu\n")
    (d / "hyp").write_text("a ang\nb ang\nc neu\n")
    r = score_decode_dir(d, ["ang", "neu"])
    assert r.name == "fold1" and r.n == 3 and r.scores["ua"] == pytest.approx(0.75)
    (d / "hyp").write_text("a ang\nb joy\nc neu\n")
    with pytest.raises(ValueError, match="unknown label 'joy'"):
        score_decode_dir(d, ["ang", "neu"])
    md = tmp_path / "RESULTS.md"
    replace_section(md, "x", "first", "# R")
    replace_section(md, "y", "other", "# R")
    replace_section(md, "x", "second", "# R")
    text = md.read_text()
    assert text.startswith("# R") and "second" in text and "first" not in text and "other" in text


def test_leave_one_session_out_folds_from_utt2session(make_data_dir, tmp_path: Path):
    """``--protocol losess``: the folds of IEMOCAP's 5 sessions (here 3), test = session k; validation one
    speaker of session k + 1 (the others of that session train), or with ``--valid next`` all of it."""
    from speechser.bin.make_folds import main
    from speechser.io.datadir import read_kv

    d = make_data_dir(n_spk=6, n_utt=2)
    utt2spk = read_kv(d / "utt2spk")
    utts = sorted(utt2spk)
    speakers = sorted(set(utt2spk.values()))
    session = {u: f"Ses0{speakers.index(utt2spk[u]) // 2 + 1}" for u in utts}  # two speakers a session
    (d / "utt2session").write_text("".join(f"{u} {session[u]}\n" for u in utts))
    assert main([str(d), str(tmp_path / "speaker"), "--protocol", "losess"]) == 0
    for k in (1, 2, 3):
        part = {p: read_kv(tmp_path / f"speaker/fold{k}/{p}/utt2spk") for p in ("train", "valid", "test")}
        assert {session[u] for u in part["test"]} == {f"Ses0{k}"}
        assert {session[u] for u in part["valid"]} == {f"Ses0{k % 3 + 1}"} and len(set(part["valid"].values())) == 1
        assert not set(part["valid"].values()) & set(part["train"].values())  # a speaker unseen in training
        assert sorted(u for p in part.values() for u in p) == utts
    assert main([str(d), str(tmp_path / "losess"), "--protocol", "losess", "--valid", "next"]) == 0
    for k in (1, 2, 3):
        test = set(read_kv(tmp_path / f"losess/fold{k}/test/utt2session").values())
        valid = set(read_kv(tmp_path / f"losess/fold{k}/valid/utt2session").values())
        train = set(read_kv(tmp_path / f"losess/fold{k}/train/utt2session").values())
        assert test == {f"Ses0{k}"} and valid == {f"Ses0{k % 3 + 1}"} and not train & (test | valid)


def test_more_random_folds_than_utterances_is_refused():
    with pytest.raises(ValueError, match="random10 needs at least 10 utterances .* there are 8: ask for at most random8"):
        stratified_kfold({f"u{i}": "a" for i in range(8)}, k=10)


def test_check_folds_refuses_an_empty_part_and_warns_on_unseen_classes_and_tiny_valid(tmp_path, capsys):
    import logging

    from speechser.bin.make_folds import main as make_folds
    from speechser.data.folds import Fold, check_folds

    with pytest.raises(ValueError, match="fold2: its valid part is empty"):
        check_folds([Fold("fold1", ["a"], ["b"], ["c"]), Fold("fold2", ["a", "b"], [], ["c"])])
    # 10 clips of 8 classes: training parts miss classes (an error naming them, their counts and what to do)
    labels = {f"u{i:02d}": f"c{i % 8}" for i in range(10)}
    with pytest.raises(ValueError, match=r"fold1: its training part \(\d+ utterances\) has no utterance of class\(es\) "
                                         r"c\d \([12] in the data\).*fewer than 3 utterances"):
        check_folds(stratified_kfold(labels, k=3), labels, protocol="random3")
    # leave-one-speaker-out where one class was recorded by two speakers only: fold1 tests on one of them and
    # validates on the other, so its training part lacks the class; stratified random folds would not
    utt2spk = {f"s{s}-u{i}": f"s{s}" for s in range(4) for i in range(6)}
    spk_labels = {u: "x" if spk in ("s0", "s1") and u[-1] in "012" else "y" for u, spk in utt2spk.items()}
    with pytest.raises(ValueError, match=r"fold1: its training part \(12 utterances\) has no utterance of class\(es\) "
                                         r"x \(6 in the data\).*loso leaves them out.*random<K> .*K at most 6"):
        check_folds(leave_one_speaker_out(utt2spk), spk_labels, protocol="loso")
    # 40 clips of 8 classes: every training part has every class, but each valid part is tiny
    labels = {f"u{i:02d}": f"c{i % 8}" for i in range(40)}
    folds = stratified_kfold(labels, k=4)
    warnings = check_folds(folds, labels)
    for f in folds:
        assert any(w.startswith(f"{f.name}: {len(f.valid)} validation utterance(s) for 8 classes") for w in warnings)
    # a balanced corpus draws no warning
    big = {f"u{i:03d}": f"c{i % 4}" for i in range(120)}
    assert check_folds(stratified_kfold(big, k=5), big) == []
    # the fold stage's tool: the warnings logged and counted, an impossible protocol an error
    d = tmp_path / "all"
    d.mkdir()
    (d / "utt2emo").write_text("".join(f"{u} {c}\n" for u, c in sorted(labels.items())))
    (d / "utt2spk").write_text("".join(f"{u} s{i % 2}\n" for i, u in enumerate(sorted(labels))))
    (d / "wav.scp").write_text("".join(f"{u} /x/{u}.wav\n" for u in sorted(labels)))
    logging.getLogger().handlers.clear()
    assert make_folds([str(d), str(tmp_path / "f"), "--protocol", "random45"]) == 1
    assert "random45 needs at least 45 utterances" in capsys.readouterr().err
    # too few speakers for leave-one-speaker-out: how many there are, and what to use instead
    assert make_folds([str(d), str(tmp_path / "f"), "--protocol", "loso"]) == 1
    err = capsys.readouterr().err
    assert "needs at least 3 speakers" in err and "the data have 2: s0, s1" in err and "random<K>" in err
    (d / "utt2session").write_text("".join(f"{u} sess{i % 2}\n" for i, u in enumerate(sorted(labels))))
    assert make_folds([str(d), str(tmp_path / "f"), "--protocol", "losess", "--valid", "next"]) == 1
    assert "leave-one-session-out (losess) needs at least 3 sessions" in capsys.readouterr().err
    assert make_folds([str(d), str(tmp_path / "f"), "--protocol", "random4"]) == 0
    assert f"4 random4 folds in {tmp_path / 'f'} ({len(warnings)} warning(s) above)" in capsys.readouterr().out
    assert (tmp_path / "f/fold4/test/utt2emo").is_file()


def test_random_folds_draw_validation_from_the_other_parts_and_keep_the_old_rule_by_name():
    from collections import Counter

    labels = {f"u{i:03d}": "ang" if i % 4 else "neu" for i in range(200)}  # 150 ang, 50 neu
    folds = stratified_kfold(labels, k=10, seed=1)
    for f in folds:
        assert len(f.test) == 20 and len(f.valid) == 18 and len(f.train) == 162  # 81 % trains
        assert Counter(labels[u] for u in f.valid) == {"ang": 14, "neu": 4}  # stratified: 10 % of each class
        assert not (set(f.valid) | set(f.train)) & set(f.test) and not set(f.valid) & set(f.train)
    old = stratified_kfold(labels, k=10, seed=1, valid="next")
    assert [f.test for f in old] == [f.test for f in folds]  # the same parts
    assert all(len(f.train) == 160 and old[(i + 1) % 10].test == f.valid for i, f in enumerate(old))
    with pytest.raises(ValueError, match="random folds have no speaker groups"):
        stratified_kfold(labels, k=10, valid="speaker")


def test_leave_one_speaker_out_with_a_validation_fraction_keeps_the_test_speaker_out():
    utt2spk = {f"s{s}-{i}": f"s{s}" for s in range(4) for i in range(10)}
    labels = {u: "a" if int(u[-1]) % 2 else "b" for u in utt2spk}
    folds = leave_one_speaker_out(utt2spk, valid="fraction", utt2label=labels, valid_fraction=0.2)
    for k, f in enumerate(folds):
        assert {utt2spk[u] for u in f.test} == {f"s{k}"} and len(f.valid) == 6 and len(f.train) == 24
        assert f"s{k}" not in {utt2spk[u] for u in f.valid + f.train}
    assert leave_one_speaker_out(utt2spk, valid="speaker", utt2speaker=utt2spk) == leave_one_speaker_out(utt2spk)


def test_scoring_adds_the_minority_class_map_from_the_posteriors(tmp_path: Path, capsys):
    """``speechser-score-ser --majority``: SAILER's minority-class mAP, the mean over the non-majority classes
    of the average precision of their posterior, per fold and pooled (min_map.tsv and the report)."""
    from speechser.bin.score_ser import main as score

    labels = tmp_path / "labels.txt"
    labels.write_text("ang\nneu\nsad\n")
    rows = {"fold1": [("a", "sad", [0.1, 0.1, 0.8]), ("b", "ang", [0.6, 0.1, 0.3]), ("c", "neu", [0.2, 0.7, 0.1])],
            "fold2": [("d", "sad", [0.5, 0.2, 0.3]), ("e", "ang", [0.3, 0.2, 0.5]), ("f", "sad", [0.2, 0.2, 0.6])]}
    for fold, items in rows.items():
        d = tmp_path / fold / "decode_test"
        d.mkdir(parents=True)
        (d / "ref").write_text("".join(f"{k} {r}\n" for k, r, _ in items))
        (d / "hyp").write_text("".join(f"{k} {['ang', 'neu', 'sad'][int(np.argmax(p))]}\n" for k, _, p in items))
        (d / "posteriors.tsv").write_text("utt\tang\tneu\tsad\n" + "".join(
            f"{k}\t" + "\t".join(str(x) for x in p) + "\n" for k, _, p in items))
    dirs = [str(tmp_path / f / "decode_test") for f in rows]
    assert score(["--label-list", str(labels), "--out-dir", str(tmp_path / "s"), "--majority", "ang,neu", *dirs]) == 0
    lines = (tmp_path / "s/min_map.tsv").read_text().splitlines()[1:]
    table = {k: float(v) for k, v in (line.split("\t") for line in lines)}
    assert float(table["fold1"]) == pytest.approx(1.0)  # sad ranked first in fold 1
    assert float(table["fold2"]) == pytest.approx((1 + 2 / 3) / 2, abs=1e-4)  # sad at 0.6, then ang at 0.5, sad at 0.3
    # pooled, by sad's posterior: a 0.8 (sad), f 0.6 (sad), e 0.5, b 0.3, d 0.3 (sad; ties in order), c 0.1
    assert float(table["pooled"]) == pytest.approx((1 + 1 + 3 / 5) / 3, abs=1e-4)
    assert "Minority-class mAP (sad; SAILER's measure)" in (tmp_path / "s/report.md").read_text()
    assert score(["--label-list", str(labels), "--out-dir", str(tmp_path / "t"), "--majority", "joy", *dirs]) == 1
    assert "majority class 'joy' is not in the label list" in capsys.readouterr().err


def test_reports_give_the_training_command_and_the_time_of_every_run(make_feats_dir, tmp_path, train_seed):
    """RESULTS.md gives the command that trained the models (as it pastes) and their training time summed over
    every epoch, across a resumed run: train_stats.tsv keeps the first run's rows."""
    from speechser.metrics.report import training_seconds, with_training_record
    from speechser.tasks.ser import infer_ser, load_ser_config, train_ser

    d = make_feats_dir(n_spk=2, n_utt=3)
    exp = tmp_path / "exp/fold1"
    args = ["--data.train_dir", str(d), "--data.valid_dir", str(d), "--data.label_list", str(d / "emotions.txt"),
            "--trainer.max_epochs", "2", "--seed", str(train_seed)]
    train_ser(load_ser_config(None, args), exp, stop_after_epoch=1)  # interrupted after epoch 1 ...
    first = training_seconds([exp])
    train_ser(load_ser_config(None, args), exp)  # ... and resumed to the end
    rows = (exp / "train_stats.tsv").read_text().splitlines()
    col = rows[0].split("\t").index("seconds")
    assert len(rows) == 3 and first is not None and first[1] == 1
    total, n = training_seconds([exp])
    assert n == 1 and total == pytest.approx(sum(float(r.split("\t")[col]) for r in rows[1:]))
    assert total >= first[0]
    infer_ser(exp, None, d, exp / "knn/test")  # a decode two levels below its experiment still finds it
    report = "## t\n\n- date: x\n- command: `ser.sh --stage 7`\n- notes\n"
    cmd = "./ser.sh --ser_args '--seed 3' --stage 5"
    out = with_training_record(report, [exp / "knn/test"], cmd)
    assert out.splitlines()[4] == f"- training command: `{cmd}`"
    assert out.splitlines()[5].startswith(f"- training time: {total:.0f} s, every epoch of the 1 experiment(s)")
    assert with_training_record(report, [tmp_path / "nowhere/decode"], "") == report
