"""speechser-make-tokens: a grapheme token list or a sentencepiece model from a data directory's ``text``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from speechser.io.datadir import DataDirError, read_kv
from speechser.log import log_command_line, setup_logging
from speechser.text.tokenizer import (
    GraphemeTokenizer,
    SentencePieceTokenizer,
    train_sentencepiece,
    write_tokenizer_settings,
)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="speechser-make-tokens")
    p.add_argument("text", help="a data directory's text file")
    p.add_argument("out_dir")
    p.add_argument("--token-type", choices=["char", "bpe", "unigram"], default="char")
    p.add_argument("--vocab-size", type=int, default=30, help="sentencepiece pieces (bpe, unigram)")
    p.add_argument("--lowercase", action="store_true",
                   help="lower-case the text; stored in <out_dir>/tokenizer.json, which training and decoding read")
    a = p.parse_args(argv)
    setup_logging()
    log_command_line()
    try:
        texts = list(read_kv(a.text, allow_empty_value=True).values())
    except DataDirError as err:
        print(f"speechser-make-tokens: error: {err}", file=sys.stderr)
        return 1
    if not any(t.strip() for t in texts):
        what = "has no lines" if not texts else f"has {len(texts)} lines but every transcript is empty"
        print(f"speechser-make-tokens: error: {a.text} {what}; no token list can be built from it",
              file=sys.stderr)
        return 1
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if a.token_type == "char":
        tokens = GraphemeTokenizer.build_token_list(texts, a.lowercase)
    else:
        model = train_sentencepiece(texts, out / "bpe", a.vocab_size, a.token_type, a.lowercase)
        tokens = SentencePieceTokenizer(model).tokens
    (out / "tokens.txt").write_text("".join(f"{t}\n" for t in tokens), encoding="utf-8")
    write_tokenizer_settings(out, a.token_type, a.lowercase)
    print(f"speechser-make-tokens: {len(tokens)} tokens -> {out}/tokens.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
