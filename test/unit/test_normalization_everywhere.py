"""One text normalization (speechser.text.normalize.normalize_text) for references and hypotheses alike, in
the data filter and in the WER/CER scorer: an NFD reference and its NFC hypothesis are 0 errors in both."""

import unicodedata
from pathlib import Path

import pytest

from speechser.filter.data_filter import FilterBounds, filter_data_dir, filter_utterances, utterance_wer
from speechser.io.datadir import write_kv
from speechser.metrics.asr import score_chars, score_words, write_asr_scores
from speechser.text.normalize import normalize_text

# Vietnamese ("tiếng Việt") and French ("café"), references written with combining accents (NFD)
NFC = {"utt1": "tiếng Việt", "utt2": "một ly café nhé"}
NFD = {k: unicodedata.normalize("NFD", v) for k, v in NFC.items()}


def test_the_fixture_really_differs_in_code_points():
    for k in NFC:
        assert NFD[k] != NFC[k] and len(NFD[k]) > len(NFC[k])
        assert normalize_text(NFD[k]) == NFC[k]
    assert NFD["utt2"].split()[2] == "cafe\u0301" and NFC["utt2"].split()[2] == "caf\u00e9"


def test_filter_wer_of_an_nfd_reference_and_its_nfc_hypothesis_is_zero():
    for k in NFC:
        assert utterance_wer(NFD[k], NFC[k]) == 0.0
        assert utterance_wer(NFC[k], NFD[k]) == 0.0  # the same either way round
    assert utterance_wer("  tiếng   Việt ", NFD["utt1"]) == 0.0  # whitespace too, as the scorer
    # with a real error the rate counts only that error: 1 of 4 words
    assert utterance_wer(NFD["utt2"], "một ly cafe nhé") == pytest.approx(0.25)
    _, _, rows = filter_utterances(NFD, NFC, {"utt1": 0.5, "utt2": 0.5}, FilterBounds(wer_min=-1.0))
    assert [r.split("\t")[1] for r in rows] == ["0.0000", "0.0000"]


def test_scorer_wer_and_cer_of_an_nfd_reference_and_its_nfc_hypothesis_are_zero(tmp_path: Path):
    words, _ = score_words(NFD, NFC)
    chars = score_chars(NFD, NFC)
    assert words.error_rate == 0.0 and chars.error_rate == 0.0
    assert words.ref_units == 6 and chars.ref_units == len("tiếngViệtmộtlycafénhé")  # counted in NFC
    scores = write_asr_scores(NFD, NFC, tmp_path / "score")
    assert scores["wer"] == 0.0 and scores["cer"] == 0.0


def test_filter_and_scorer_agree_utterance_by_utterance():
    refs = {"a": NFD["utt1"], "b": NFD["utt2"], "c": "  x   y z ", "d": unicodedata.normalize("NFD", "đường phố")}
    hyps = {"a": "tiếng việt", "b": "một ly café", "c": "x y  q", "d": "đường phố"}
    for k in refs:
        words, _ = score_words({k: refs[k]}, {k: hyps[k]})
        assert utterance_wer(refs[k], hyps[k]) == pytest.approx(words.error_rate), k


def test_filter_data_dir_with_nfd_references_keeps_an_exact_nfc_hypothesis(make_data_dir, tmp_path: Path):
    d = make_data_dir(n_spk=1, n_utt=2)
    keys = ["spkA-u0", "spkA-u1"]
    write_kv(d / "text", {keys[0]: NFD["utt1"], keys[1]: NFD["utt2"]})
    dec = tmp_path / "dec"
    dec.mkdir()
    write_kv(dec / "text", {keys[0]: NFC["utt1"], keys[1]: "một ly cafe nhé"})
    write_kv(dec / "confidence", {k: "0.5" for k in keys})
    rep = filter_data_dir(d, dec, tmp_path / "kept", FilterBounds(wer_min=-1.0, wer_max=0.01))
    assert rep.kept == 1 and rep.by_bound["wer_high"] == 1
    stats = (tmp_path / "kept.utt_stats.tsv").read_text(encoding="utf-8").splitlines()
    assert stats[1].split("\t")[:2] == [keys[0], "0.0000"] and stats[2].split("\t")[:2] == [keys[1], "0.2500"]
