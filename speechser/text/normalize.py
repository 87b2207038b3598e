"""Text normalization shared by tokenizers and scoring.

:func:`normalize_text` is the one normalization of ASR text. Tokenizers
apply it before encoding and after decoding (so hypotheses come out
normalized); the WER/CER scorer (:mod:`speechser.metrics.asr`) and the data
filter's per-utterance WER (:mod:`speechser.filter.data_filter`) apply it,
with its default arguments, to the reference *and* the hypothesis alike, so
that a reference written with combining accents (NFD, e.g. ``"cafe\u0301"``)
and its precomposed (NFC) hypothesis ``"caf\u00e9"`` score 0 errors in both.
"""

from __future__ import annotations

import unicodedata


def normalize_text(text: str, lowercase: bool = False) -> str:
    """Unicode NFC (so that a precomposed and a combining-mark spelling of the
    same Vietnamese or German letter become one code-point sequence), then
    whitespace collapsed to single spaces; optionally lower-cased."""
    text = unicodedata.normalize("NFC", text)
    text = " ".join(text.split())
    return text.lower() if lowercase else text
