"""The ablation table: fold-by-fold comparison of cross-validation scores."""

from pathlib import Path

import pytest

from speechser.bin.compare_ser import main
from speechser.io.datadir import DataDirError
from speechser.metrics.compare import compare_rows, read_fold_scores

HEADER = "fold\tn\tua\twa\tmacro_f1\n"


def _scores(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + "".join(f"{f}\t{n}\t{ua}\t{wa}\t0.5\n" for f, n, ua, wa in rows))
    return path


def test_compare_rows_means_deltas_and_wins(tmp_path: Path):
    a = _scores(tmp_path / "a.tsv", [("fold1", 10, 0.6, 0.7), ("fold2", 20, 0.8, 0.9)])
    b = _scores(tmp_path / "b.tsv", [("fold2", 20, 0.7, 0.8), ("fold1", 10, 0.9, 0.7)])  # order does not matter
    stats = compare_rows([read_fold_scores("a", a), read_fold_scores("b", b)])
    # sample standard deviation (n - 1): two folds 0.2 apart -> 0.2 / sqrt(2)
    assert stats[0]["ua"] == pytest.approx(0.7) and stats[0]["ua_std"] == pytest.approx(0.2 / 2 ** 0.5)
    assert stats[1]["ua"] == pytest.approx(0.8) and stats[1]["ua_std"] == pytest.approx(0.2 / 2 ** 0.5)
    assert stats[1]["wa"] == pytest.approx(0.75) and stats[1]["wa_std"] == pytest.approx(0.1 / 2 ** 0.5)
    assert stats[1]["d_ua"] == pytest.approx(0.1) and stats[1]["wins"] == 1 and stats[0]["wins"] == 0
    assert stats[1]["utts"] == 30 and stats[1]["folds"] == 2


def test_rows_on_other_folds_are_refused(tmp_path: Path):
    a = read_fold_scores("a", _scores(tmp_path / "a.tsv", [("fold1", 10, 0.6, 0.7), ("fold2", 20, 0.8, 0.9)]))
    fewer = read_fold_scores("b", _scores(tmp_path / "b.tsv", [("fold1", 10, 0.6, 0.7)]))
    other_n = read_fold_scores("c", _scores(tmp_path / "c.tsv", [("fold1", 11, 0.6, 0.7), ("fold2", 20, 0.8, 0.9)]))
    with pytest.raises(DataDirError, match="folds"):
        compare_rows([a, fewer])
    with pytest.raises(DataDirError, match="fold1 has 11 test utterances"):
        compare_rows([a, other_n])


def test_malformed_scores_name_file_and_line(tmp_path: Path):
    bad = tmp_path / "bad.tsv"
    bad.write_text(HEADER + "fold1\t10\t0.5\t0.5\t0.5\nfold2\t10\tabc\t0.5\t0.5\n")
    with pytest.raises(DataDirError, match=r"bad.tsv:3:"):
        read_fold_scores("bad", bad)
    twice = tmp_path / "twice.tsv"
    twice.write_text(HEADER + "fold1\t10\t0.5\t0.5\t0.5\nfold1\t10\t0.6\t0.5\t0.5\n")
    with pytest.raises(DataDirError, match=r"twice.tsv:3: fold 'fold1' appears twice"):
        read_fold_scores("twice", twice)
    with pytest.raises(DataDirError, match="no such scores file"):
        read_fold_scores("missing", tmp_path / "missing.tsv")


def test_cli_writes_the_section_in_place(tmp_path: Path, capsys):
    a = _scores(tmp_path / "a.tsv", [("fold1", 10, 0.6, 0.7), ("fold2", 20, 0.8, 0.9)])
    b = _scores(tmp_path / "b.tsv", [("fold1", 10, 0.9, 0.7), ("fold2", 20, 0.7, 0.8)])
    md = tmp_path / "RESULTS.md"
    md.write_text("# RESULTS\n\nintro\n\n<!-- begin abl -->\nSTALE ROW\n<!-- end abl -->\n\ntail\n")
    assert main(["--results-md", str(md), "--tag", "abl", "--title", "Ablation", f"base={a}", f"+ x={b}"]) == 0
    text = md.read_text()
    assert text.startswith("# RESULTS\n\nintro\n") and text.rstrip().endswith("tail") and "STALE ROW" not in text
    assert "mean ± sample standard deviation (n − 1) over folds" in text
    assert f"| base | 70.00 ± 14.14 | 80.00 ± 14.14 | — | — | `{a}` |" in text
    assert f"| + x | 80.00 ± 14.14 | 75.00 ± 7.07 | +10.00 | 1 / 2 | `{b}` |" in text
    assert main([f"base={a}", "nameless"]) == 1
    assert "expected NAME=PATH" in capsys.readouterr().err


def test_a_row_of_several_seeds_averages_their_folds_and_shows_the_spread(tmp_path):
    from speechser.metrics.compare import comparison_markdown, read_seed_scores

    base = read_fold_scores("base", _scores(tmp_path / "base.tsv", [("fold1", 10, 0.5, 0.5), ("fold2", 20, 0.5, 0.5)]))
    s1 = _scores(tmp_path / "s1.tsv", [("fold1", 10, 0.6, 0.6), ("fold2", 20, 0.8, 0.8)])
    s2 = _scores(tmp_path / "s2.tsv", [("fold1", 10, 0.4, 0.4), ("fold2", 20, 0.6, 0.6)])
    row = read_seed_scores("tdnn", [s1, s2])
    assert row.folds["fold1"][1] == pytest.approx(0.5) and row.folds["fold2"][1] == pytest.approx(0.7)
    assert row.seed_uas == pytest.approx((0.7, 0.5))
    stats = compare_rows([base, row])
    assert stats[1]["ua"] == pytest.approx(0.6) and stats[1]["wins"] == 1
    table = comparison_markdown([base, row], "T")
    assert "| 2: 70.00 / 50.00 (± 14.14) |" in table and "| 1 |" in table
    other = _scores(tmp_path / "s3.tsv", [("fold1", 11, 0.6, 0.6), ("fold2", 20, 0.8, 0.8)])
    with pytest.raises(DataDirError, match="s3.tsv: its folds or test utterance counts differ"):
        read_seed_scores("tdnn", [s1, other])
