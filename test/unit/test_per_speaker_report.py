"""speechser-score-ser --utt2spk: the test utterances of all folds regrouped by speaker (issue 14's
per-speaker table), and clear errors for an utterance without a speaker or scored twice."""

import numpy as np
import pytest

from speechser.bin.score_ser import main as score_main
from speechser.io.datadir import DataDirError
from speechser.metrics.decode_dir import write_ser_decode

LABELS = ["ang", "hap"]


def fold(root, k, keys, refs, hyps):
    post = np.eye(2)[hyps]
    write_ser_decode(root / f"fold{k}/decode_test", keys, post, refs, LABELS)
    return root / f"fold{k}/decode_test"


def test_the_per_speaker_table_pools_the_folds_by_speaker(tmp_path, capsys):
    # random folds mix speakers: s1 is in both folds, s2 in the second only
    d1 = fold(tmp_path, 1, ["a1", "a2"], [0, 1], [0, 0])
    d2 = fold(tmp_path, 2, ["a3", "b1", "b2"], [1, 0, 1], [1, 0, 1])
    (tmp_path / "labels").write_text("ang\nhap\n")
    (tmp_path / "utt2spk").write_text("a1 s1\na2 s1\na3 s1\nb1 s2\nb2 s2\nc9 s3\n")
    rc = score_main(["--label-list", str(tmp_path / "labels"), "--out-dir", str(tmp_path / "scores"),
                     "--utt2spk", str(tmp_path / "utt2spk"), str(d1), str(d2)])
    assert rc == 0
    rows = [r.split("\t") for r in (tmp_path / "scores/per_speaker.tsv").read_text().splitlines()[1:]]
    # s1: ang 1/1 right, hap 1/2 right -> UA 75 %, WA 2/3; s2: all right
    assert [(r[0], r[1]) for r in rows] == [("s1", "3"), ("s2", "2")]
    assert float(rows[0][2]) == pytest.approx(0.75) and float(rows[0][3]) == pytest.approx(2 / 3, abs=1e-5)
    assert float(rows[1][2]) == pytest.approx(1.0)
    report = (tmp_path / "scores/report.md").read_text()
    assert "| speaker | utts | UA % | WA % |" in report and "| s1 | 3 | 75.00 | 66.67 |" in report
    # an utterance without a speaker is an error naming the file
    (tmp_path / "utt2spk").write_text("a1 s1\na2 s1\na3 s1\nb1 s2\n")
    rc = score_main(["--label-list", str(tmp_path / "labels"), "--out-dir", str(tmp_path / "scores"),
                     "--utt2spk", str(tmp_path / "utt2spk"), str(d1), str(d2)])
    assert rc == 1 and "utt2spk: no speaker for utterance 'b2' of fold2" in capsys.readouterr().err


def test_an_utterance_in_two_folds_is_refused(tmp_path):
    from speechser.metrics.report import score_decode_dir, speaker_results

    d1 = fold(tmp_path, 1, ["a1"], [0], [0])
    d2 = fold(tmp_path, 2, ["a1"], [0], [1])
    folds = [score_decode_dir(d, LABELS) for d in (d1, d2)]
    with pytest.raises(DataDirError, match="'a1' is scored in both fold1 and fold2"):
        speaker_results(folds, {"a1": "s1"}, 2)
