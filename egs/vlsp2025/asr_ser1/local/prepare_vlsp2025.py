#!/usr/bin/env python3
"""VLSP 2025 ASR-SER release -> Kaldi data directories ``train``, ``dev`` and ``test``.

The challenge data cannot be fetched here, so this file states the release
layout it assumes; it is the only corpus-specific code of the recipe. If the
release you hold differs, change this file (or convert the release to this
layout):

    <root>/<split>/metadata.tsv   header "id<TAB>speaker<TAB>emotion<TAB>transcript", one utterance per line
    <root>/<split>/wav/<id>.wav   audio in any format soundfile reads (resampled to 16 kHz at stage 2)

for ``<split>`` in ``train``, ``dev``, ``test``. ``emotion`` is the corpus's
label (mapped onto the task's neutral/negative classes by
``conf/label_map.yaml`` at scoring); ``transcript`` is Unicode text (NFC
normalized here, case kept: the grapheme inventory is built from it).

Utterance ids become ``<speaker>-<id>`` (unless ``id`` already starts with
``<speaker>-``) so that they sort by speaker, as Kaldi requires. A malformed
line, a duplicate id or a missing audio file is an error naming file and line.
"""

import argparse
import sys
from pathlib import Path

from speechser.io.datadir import write_data_dir
from speechser.text.normalize import normalize_text

HEADER = ["id", "speaker", "emotion", "transcript"]


def read_split(root: Path, split: str) -> dict:
    meta = root / split / "metadata.tsv"
    if not meta.is_file():
        raise SystemExit(f"prepare_vlsp2025.py: {meta}: no such file (see the layout in this script's docstring)")
    lines = meta.read_text(encoding="utf-8").splitlines()
    if not lines or lines[0].split("\t") != HEADER:
        raise SystemExit(f"prepare_vlsp2025.py: {meta}:1: expected the header '{chr(9).join(HEADER)}'")
    out = {}
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) != 4 or not all(c.strip() for c in cols[:3]):
            raise SystemExit(f"prepare_vlsp2025.py: {meta}:{n}: expected 4 tab-separated columns with id, "
                             f"speaker and emotion set")
        uid, spk, emo, text = (c.strip() for c in cols)
        if any(" " in x for x in (uid, spk, emo)):
            raise SystemExit(f"prepare_vlsp2025.py: {meta}:{n}: id, speaker and emotion may not contain spaces")
        wav = root / split / "wav" / f"{uid}.wav"
        if not wav.is_file():
            raise SystemExit(f"prepare_vlsp2025.py: {meta}:{n}: audio '{wav}' does not exist")
        key = uid if uid.startswith(f"{spk}-") else f"{spk}-{uid}"
        if key in out:
            raise SystemExit(f"prepare_vlsp2025.py: {meta}:{n}: utterance '{uid}' appears twice")
        out[key] = (str(wav.resolve()), normalize_text(text), spk, emo)
    if not out:
        raise SystemExit(f"prepare_vlsp2025.py: {meta}: no utterances")
    return out


def write_dir(out: Path, entries: dict) -> None:
    """``entries`` (utt -> (wav, text, speaker, emotion)) as the data directory ``out``."""
    write_data_dir(out, {name: {u: e[i] for u, e in entries.items()}
                         for i, name in enumerate(("wav.scp", "text", "utt2spk", "utt2emo"))})


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", type=Path, help="the release's root directory")
    p.add_argument("data", type=Path, help="writes <data>/{train,dev,test} and <data>/emotions.txt")
    a = p.parse_args()
    labels = set()
    for split in ("train", "dev", "test"):
        entries = read_split(a.root, split)
        write_dir(a.data / split, entries)
        labels |= {e[3] for e in entries.values()}
        print(f"prepare_vlsp2025.py: {split}: {len(entries)} utterances")
    (a.data / "emotions.txt").write_text("".join(f"{lab}\n" for lab in sorted(labels)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
