"""Text normalization shared by tokenizers and scoring."""

from __future__ import annotations

import unicodedata


def normalize_text(text: str, lowercase: bool = False) -> str:
    """Unicode NFC (so that a precomposed and a combining-mark spelling of the
    same Vietnamese or German letter become one code-point sequence), then
    whitespace collapsed to single spaces; optionally lower-cased."""
    text = unicodedata.normalize("NFC", text)
    text = " ".join(text.split())
    return text.lower() if lowercase else text
