import numpy as np
import pytest

from speechser.metrics.classification import (
    confusion_matrix,
    format_confusion,
    plot_confusion,
    scores_from_confusion,
)


def test_scores_by_hand():
    # class 0: 3 items, 2 right; class 1: 1 item, right; class 2: never in refs, predicted once
    refs = [0, 0, 0, 1]
    hyps = [0, 0, 2, 1]
    cm = confusion_matrix(refs, hyps, 3)
    assert cm.tolist() == [[2, 0, 1], [0, 1, 0], [0, 0, 0]]
    s = scores_from_confusion(cm)
    assert s["wa"] == pytest.approx(3 / 4)
    assert s["ua"] == pytest.approx((2 / 3 + 1) / 2)  # class 2 absent from refs: not averaged
    f1_0 = 2 * 1.0 * (2 / 3) / (1.0 + 2 / 3)
    assert s["macro_f1"] == pytest.approx((f1_0 + 1.0) / 2)


def test_length_mismatch():
    with pytest.raises(ValueError):
        confusion_matrix([0, 1], [0], 2)


def test_confusion_text_and_png(tmp_path):
    cm = np.array([[5, 1], [2, 2]])
    text = format_confusion(cm, ["ang", "neu"])
    assert "83.3" in text and "50.0" in text
    plot_confusion(cm, ["ang", "neu"], tmp_path / "cm.png")
    assert (tmp_path / "cm.png").read_bytes()[:4] == b"\x89PNG"
