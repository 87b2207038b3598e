import unicodedata
from pathlib import Path

import pytest

from speechser.text.normalize import normalize_text
from speechser.text.tokenizer import GraphemeTokenizer, SentencePieceTokenizer, train_sentencepiece

VI = ["Tôi yêu tiếng Việt", "người đẹp quá", "Hà Nội mùa thu", "cảm ơn bạn nhiều lắm"]


def test_nfc_normalization_unifies_spellings():
    decomposed = unicodedata.normalize("NFD", "Việt  Nam")
    assert decomposed != "Việt Nam"
    assert normalize_text(decomposed) == "Việt Nam"


def test_grapheme_roundtrip_vietnamese_and_unknown(tmp_path: Path):
    tokens = GraphemeTokenizer.build_token_list(VI)
    path = tmp_path / "tokens.txt"
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    tok = GraphemeTokenizer(path)
    for s in VI:
        assert tok.decode(tok.encode(unicodedata.normalize("NFD", s))) == s
    ids = tok.encode("Việt z")
    assert ids[-1] == 1 and tok.decode(ids) == "Việt <unk>"
    assert tok.decode([0, *tok.encode("Hà"), 0]) == "Hà"  # blanks are dropped


def test_grapheme_token_list_errors(tmp_path: Path):
    bad = tmp_path / "bad.txt"
    bad.write_text("<unk>\n<blank>\na\n")
    with pytest.raises(ValueError, match="first tokens must be"):
        GraphemeTokenizer(bad)
    bad.write_text("<blank>\n<unk>\na\nb\na\n")
    with pytest.raises(ValueError, match=r"bad.txt:5: duplicate token 'a'"):
        GraphemeTokenizer(bad)


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_sentencepiece_train_and_roundtrip(tmp_path: Path, model_type: str):
    texts = VI * 20 + ["the quick brown fox jumps over the lazy dog"] * 20
    model = train_sentencepiece(texts, tmp_path / "sp", vocab_size=80, model_type=model_type)
    tok = SentencePieceTokenizer(model)
    assert tok.tokens[0] == "<blank>" and tok.tokens[1] == "<unk>"
    for s in [*VI, "the lazy fox"]:
        ids = tok.encode(unicodedata.normalize("NFD", s))
        assert all(i >= 1 for i in ids)
        assert tok.decode(ids) == s
