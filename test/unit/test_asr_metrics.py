import pytest

from speechser.io.datadir import DataDirError
from speechser.metrics.asr import score_chars, score_words, write_asr_scores


def test_word_and_char_counts_by_hand(tmp_path):
    refs = {"u1": "a b c d", "u2": "x y", "u3": ""}
    hyps = {"u1": "a c d e", "u2": "x y", "u3": "z"}
    w, alignment = score_words(refs, hyps)
    assert (w.ref_units, w.correct, w.substitutions, w.deletions, w.insertions) == (6, 5, 0, 1, 2)
    assert w.sentence_errors == 2 and w.error_rate == pytest.approx(3 / 6)
    assert "id: u1" in alignment and "REF: a b c d *" in alignment
    c = score_chars({"u": "ab cd"}, {"u": "abxd"})
    assert (c.ref_units, c.substitutions) == (4, 1) and c.error_rate == pytest.approx(0.25)
    scores = write_asr_scores(refs, hyps, tmp_path)
    assert scores["wer"] == pytest.approx(0.5)
    row = (tmp_path / "result.wer.md").read_text().splitlines()[-1]
    assert row == "| test | 3 | 6 | 83.3 | 0.0 | 16.7 | 33.3 | 50.0 | 66.7 |"


def test_missing_hypothesis_is_an_error():
    with pytest.raises(DataDirError, match=r"no hypothesis for 1 of 2 reference utterance\(s\): b"):
        score_words({"a": "x", "b": "y"}, {"a": "x"})
