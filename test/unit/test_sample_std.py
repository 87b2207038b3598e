"""`± std` over cross-validation folds is the sample standard deviation (n - 1), and the tables say so."""

import math
import re
import statistics
from pathlib import Path

import numpy as np
import pytest

from speechser.metrics.classification import mean_and_sample_std
from speechser.metrics.compare import compare_rows, comparison_markdown, read_fold_scores
from speechser.metrics.report import FoldResult, cv_report

ROOT = Path(__file__).resolve().parents[2]
HEADER = "fold\tn\tua\twa\tmacro_f1\n"
# The textbook example: population std 2, sample std sqrt(32 / 7).
KNOWN = [2, 4, 4, 4, 5, 5, 7, 9]


def test_mean_and_sample_std_on_known_numbers():
    m, s = mean_and_sample_std(KNOWN)
    assert m == 5.0
    assert s == pytest.approx(math.sqrt(32 / 7)) and s == pytest.approx(2.13808993529939)
    assert s != pytest.approx(2.0)  # not the population std
    assert s == pytest.approx(statistics.stdev(KNOWN)) and s == pytest.approx(np.std(KNOWN, ddof=1))
    assert mean_and_sample_std([0.6, 0.8])[1] == pytest.approx(0.2 / math.sqrt(2))
    m1, s1 = mean_and_sample_std([0.7])
    assert m1 == 0.7 and math.isnan(s1)  # undefined for one value
    with pytest.raises(ValueError):
        mean_and_sample_std([])


def _scores(path: Path, uas, was) -> Path:
    path.write_text(HEADER + "".join(f"fold{i + 1}\t10\t{u}\t{w}\t0.5\n" for i, (u, w) in enumerate(zip(uas, was))))
    return path


def test_comparison_table_uses_the_sample_std_and_says_so(tmp_path: Path):
    uas = [x / 10 for x in KNOWN]  # 0.2 ... 0.9: UA mean 50 %, sample std 21.38 % (population: 20.00 %)
    was = [0.5, 0.5, 0.5, 0.5, 0.6, 0.6, 0.6, 0.6]  # sample std sqrt(8 * 0.0025 / 7) = 5.35 % (population 5.00 %)
    row = read_fold_scores("a", _scores(tmp_path / "a.tsv", uas, was))
    (stats,) = compare_rows([row])
    assert stats["ua_std"] == pytest.approx(math.sqrt(32 / 7) / 10)
    md = comparison_markdown([row], "T")
    assert "| a | 50.00 ± 21.38 | 55.00 ± 5.35 |" in md
    assert "mean ± sample standard deviation (n − 1) over folds" in md
    one = read_fold_scores("one", _scores(tmp_path / "one.tsv", [0.5], [0.6]))
    assert "| one | 50.00 ± n/a | 60.00 ± n/a |" in comparison_markdown([one], "T")


def test_cv_report_std_row_is_the_sample_std_and_captioned():
    folds = [FoldResult(f"fold{i + 1}", 10, {"ua": x / 10, "wa": x / 10, "macro_f1": x / 10}, np.eye(2, dtype=int) * 5)
             for i, x in enumerate(KNOWN)]
    report = cv_report(folds, ["a", "b"], "T", "cmd")
    assert "| **mean** | 80 | 50.00 | 50.00 | 50.00 |" in report
    assert "| **std** | 80 | 21.38 | 21.38 | 21.38 |" in report  # population std would print 20.00
    assert "sample standard deviation over the 8 fold(s), n − 1" in report
    single = cv_report(folds[:1], ["a", "b"], "T", "cmd")
    assert "| **std** | 10 | n/a | n/a | n/a |" in single


def _sections(text: str):
    for tag, body in re.findall(r"<!-- begin (\S+) -->(.*?)<!-- end \1 -->", text, re.S):
        rows = re.findall(r"^\| fold\d+ \| \d+ \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$", body, re.M)
        if rows:
            yield tag, body, [[float(x) for x in col] for col in zip(*rows)]


def test_emodb_results_std_is_the_sample_std_of_the_listed_folds():
    """The std rows and the ablation table's ± columns of egs/emodb/ser1/RESULTS.md are the sample std of
    the per-fold scores the file lists (to the 2 decimals it prints), and the means are those folds' means."""
    text = (ROOT / "egs/emodb/ser1/RESULTS.md").read_text(encoding="utf-8")
    per_tag = {}
    for tag, body, cols in _sections(text):
        mean = re.search(r"^\| \*\*mean\*\* \| \d+ \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$", body, re.M)
        std = re.search(r"^\| \*\*std\*\* \| \d+ \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$", body, re.M)
        assert mean and std, tag
        # The printed mean is rounded from the unrounded fold scores, the folds are printed rounded: each
        # rounding moves a value by at most 0.005, so the two can differ by up to 0.01.
        for col, m, s in zip(cols, mean.groups(), std.groups()):
            assert float(m) == pytest.approx(statistics.mean(col), abs=0.0101), tag
            assert float(s) == pytest.approx(statistics.stdev(col), abs=0.0101), tag
        assert "sample standard deviation" in body, tag
        per_tag[tag] = cols
    # every fold table of the file was checked (issue 12's metadata rows, issue 13's MLCNN rows among them)
    assert {"train_tdnn-loso", "train_tdnn_metadata-loso", "train_tdnn_multitask-loso", "train_mlcnn-loso",
            "train_mlcnn-random10", "train_tdnn_gpu-loso"} <= set(per_tag)
    assert len(per_tag) == text.count("**std** is the sample standard deviation")
    rows = {"1. foundation (train_tdnn)": "train_tdnn-loso",
            "3. + hybrid loss 0.5 CE + 0.5 SupCon": "train_tdnn_asr_fusion_supcon-loso",
            "2b. row 2 + modality dropout 0.5": "train_tdnn_asr_fusion_mdrop-loso"}
    for name, tag in rows.items():
        m = re.search(r"^\| " + re.escape(name) + r" \| ([\d.]+) ± ([\d.]+) \| ([\d.]+) ± ([\d.]+) \|", text, re.M)
        assert m, name
        ua, wa = per_tag[tag][0], per_tag[tag][1]
        assert float(m.group(2)) == pytest.approx(statistics.stdev(ua), abs=0.006), name
        assert float(m.group(4)) == pytest.approx(statistics.stdev(wa), abs=0.006), name
    assert "mean ± sample standard deviation (n − 1) over folds" in text
