"""Tokenizers: sentencepiece (unigram / bpe) trained from a data directory's ``text``,
and graphemes over a fixed token list.

Both map ``str -> List[int]`` and back, with a shared layout of special ids:
``0`` is the blank (CTC / RNN-T) and ``1`` the unknown token; real tokens
start at ``2``. ``decode(encode(s)) == normalize_text(s)`` for text whose
characters are all known.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Iterable, List, Sequence

from speechser.text.normalize import normalize_text

BLANK = "<blank>"
UNK = "<unk>"
SPACE = "<space>"


#: Written by ``speechser-make-tokens`` beside ``tokens.txt`` (and ``bpe.model``): how text was
#: normalized when the tokens were made, read back by training and decoding.
SETTINGS_FILE = "tokenizer.json"


def write_tokenizer_settings(token_dir: Path | str, token_type: str, lowercase: bool) -> Path:
    """Write ``<token_dir>/tokenizer.json``: ``{"token_type", "lowercase"}``."""
    path = Path(token_dir) / SETTINGS_FILE
    path.write_text(json.dumps({"token_type": token_type, "lowercase": bool(lowercase)}, indent=1) + "\n")
    return path


def read_tokenizer_settings(token_file: Path | str) -> Dict[str, Any]:
    """The settings stored beside a token list or sentencepiece model (``tokenizer.json`` in its folder).

    A folder without one (made before the file existed) means the defaults
    (no lower-casing). A malformed file, or unknown keys, is an error naming it.
    """
    path = Path(token_file).parent / SETTINGS_FILE
    if not path.is_file():
        return {"lowercase": False}
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
    if not isinstance(settings, dict):
        raise ValueError(f"{path}: expected a JSON object with token_type and lowercase")
    unknown = sorted(set(settings) - {"token_type", "lowercase"})
    if unknown:
        raise ValueError(f"{path}: unknown key '{unknown[0]}' (token_type, lowercase)")
    if not isinstance(settings.get("lowercase", False), bool):
        raise ValueError(f"{path}: 'lowercase' must be true or false, got {settings['lowercase']!r}")
    return settings


class Tokenizer:
    """Common interface: ``encode``, ``decode``, ``normalize``, ``vocab_size``, ``tokens``."""

    tokens: List[str]
    lowercase: bool = False

    def normalize(self, text: str) -> str:
        """The text as this tokenizer sees it (NFC, spaces collapsed, lower-cased if it was built so):
        references must be put through it before they are compared with decoded hypotheses."""
        return normalize_text(text, self.lowercase)

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> List[int]:
        raise NotImplementedError

    def decode(self, ids: Sequence[int]) -> str:
        raise NotImplementedError


class GraphemeTokenizer(Tokenizer):
    """One token per character (after NFC), ``<space>`` for a space.

    The token list file has one token per line; its first two lines must be
    ``<blank>`` and ``<unk>``. A character missing from the list encodes to
    ``<unk>`` (and decodes to it), so that nothing is silently dropped.
    """

    def __init__(self, token_list: Path | str | Sequence[str], lowercase: bool = False) -> None:
        if isinstance(token_list, (str, Path)) and Path(token_list).is_file():
            lines = Path(token_list).read_text(encoding="utf-8").split("\n")
            if lines and lines[-1] == "":
                lines.pop()
            self.tokens = [normalize_text(t) if t not in (BLANK, UNK, SPACE) else t for t in lines]
            where = str(token_list)
        elif isinstance(token_list, (list, tuple)):
            self.tokens = list(token_list)
            where = "token list"
        else:
            raise FileNotFoundError(f"{token_list}: no such token list")
        if self.tokens[:2] != [BLANK, UNK]:
            raise ValueError(f"{where}: the first tokens must be {BLANK} and {UNK}, got {self.tokens[:2]}")
        seen: Dict[str, int] = {}
        for i, tok in enumerate(self.tokens):
            if tok in seen:
                raise ValueError(f"{where}:{i + 1}: duplicate token '{tok}' (first on line {seen[tok] + 1})")
            if tok not in (BLANK, UNK, SPACE) and len(tok) != 1:
                raise ValueError(f"{where}:{i + 1}: grapheme token '{tok}' is not one character")
            seen[tok] = i
        self.index = seen
        self.lowercase = lowercase

    @staticmethod
    def build_token_list(texts: Iterable[str], lowercase: bool = False) -> List[str]:
        """``<blank> <unk> <space>`` then every character of ``texts`` (NFC), sorted."""
        chars = set()
        for t in texts:
            chars.update(normalize_text(t, lowercase).replace(" ", ""))
        return [BLANK, UNK, SPACE, *sorted(chars)]

    def encode(self, text: str) -> List[int]:
        unk = self.index[UNK]
        out = []
        for ch in normalize_text(text, self.lowercase):
            out.append(self.index.get(SPACE if ch == " " else ch, unk))
        return out

    def decode(self, ids: Sequence[int]) -> str:
        chars = []
        for i in ids:
            tok = self.tokens[i]
            if tok == BLANK:
                continue
            chars.append(" " if tok == SPACE else tok)
        return normalize_text("".join(chars))


class SentencePieceTokenizer(Tokenizer):
    """A trained sentencepiece model (``.model``); ids shifted so that 0 = blank.

    sentencepiece's own id 0 is ``<unk>``; ours is ``1``; its piece ``k`` is our ``k + 1``.
    """

    def __init__(self, model_path: Path | str, lowercase: bool = False) -> None:
        import sentencepiece as spm

        if not Path(model_path).is_file():
            raise FileNotFoundError(f"{model_path}: no such sentencepiece model")
        self.sp = spm.SentencePieceProcessor(model_file=str(model_path))
        if self.sp.id_to_piece(0) != UNK:
            raise ValueError(f"{model_path}: piece 0 must be {UNK} (train with train_sentencepiece)")
        self.tokens = [BLANK] + [self.sp.id_to_piece(i) for i in range(self.sp.get_piece_size())]
        self.lowercase = lowercase

    def encode(self, text: str) -> List[int]:
        return [i + 1 for i in self.sp.encode(normalize_text(text, self.lowercase))]

    def decode(self, ids: Sequence[int]) -> str:
        return normalize_text(self.sp.decode([i - 1 for i in ids if i > 0]))


def train_sentencepiece(
    texts: Iterable[str],
    model_prefix: Path | str,
    vocab_size: int,
    model_type: str = "unigram",
    lowercase: bool = False,
    character_coverage: float = 1.0,
) -> Path:
    """Train a sentencepiece model on normalized ``texts``; returns ``<prefix>.model``.

    ``vocab_size`` counts sentencepiece's pieces (``<unk>`` included); the
    tokenizer adds the blank, so its ``vocab_size`` is one more.
    """
    import sentencepiece as spm

    if model_type not in ("unigram", "bpe"):
        raise ValueError(f"model_type must be unigram or bpe, got '{model_type}'")
    prefix = Path(model_prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    sentences = [normalize_text(t, lowercase) for t in texts]
    sentences = [s for s in sentences if s]
    if not sentences:
        raise ValueError("no text to train sentencepiece on")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_prefix=str(prefix),
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=character_coverage,
        unk_id=0,
        bos_id=-1,
        eos_id=-1,
        pad_id=-1,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    return Path(f"{prefix}.model")
