#!/usr/bin/env python3
"""EmoV-DB, the sorted release (EmoV-DB_sorted), -> a Kaldi data directory with transcripts.

The release root holds one folder per speaker (``bea``, ``jenie``, ``josh``, ``sam``), each with one
folder per emotion it has (``Amused``, ``Angry``, ``Disgusted``, ``Neutral``, ``Sleepy``; any case), each
with files ``<style>_<a>-<b>_<NNNN>.wav`` (style word, the annotation range a-b, the CMU Arctic sentence
number NNNN: ``anger_1-28_0011.wav`` is sentence arctic_a0011). The transcripts come from CMU Arctic's
``cmuarctic.data`` (lines ``( arctic_a0001 "Author of the danger trail, Philip Steels, etc." )``), which the
release does not include: put it in the release root (festvox.org/cmu_arctic/cmuarctic.data), as the
distributor's own alignment script expects, or pass ``--arctic-data``.

Writes wav.scp, utt2spk, spk2utt, utt2emo (``amu ang dis neu sle``), utt2gender (bea, jenie f; josh, sam m),
text (the Arctic sentence, whitespace normalized) and emotions.txt. With ``--no-text`` the transcripts are
not needed and text is not written. A folder, file name or sentence off this layout is an error naming it.
"""

import argparse
import re
import sys
from pathlib import Path

from speechser.io.datadir import write_data_dir
from speechser.text.normalize import normalize_text

EMOTIONS = {"amused": "amu", "angry": "ang", "disgusted": "dis", "neutral": "neu", "sleepy": "sle"}
SPEAKERS = {"bea": "f", "jenie": "f", "josh": "m", "sam": "m"}
NAME = re.compile(r"^([a-z]+)_(\d+)-(\d+)_(\d{4})$")
ARCTIC = re.compile(r'^\(\s*arctic_a(\d{4})\s+"(.*)"\s*\)\s*$')


class LayoutError(ValueError):
    """A file or folder that is not where or what the release has."""


def read_arctic(path: Path) -> dict:
    """``cmuarctic.data`` -> sentence number (``0001``) -> text, the ``arctic_a`` set (the one EmoV-DB reads)."""
    if not path.is_file():
        raise LayoutError(f"{path}: no such file: EmoV-DB's transcripts are CMU Arctic's; download "
                          "festvox.org/cmu_arctic/cmuarctic.data into the release root (or run with --no-text)")
    out = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or "arctic_b" in line:
            continue
        m = ARCTIC.match(line.strip())
        if not m:
            raise LayoutError(f'{path}:{lineno}: expected ( arctic_aNNNN "text" ), got {line!r}')
        out[m.group(1)] = normalize_text(m.group(2))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("emov_db", help="the release root (holds bea/, jenie/, josh/, sam/)")
    p.add_argument("out", help="data directory to write")
    p.add_argument("--arctic-data", default="", help="CMU Arctic's cmuarctic.data (default: in the release root)")
    p.add_argument("--no-text", action="store_true", help="write no transcripts (cmuarctic.data not needed)")
    a = p.parse_args()
    root = Path(a.emov_db)
    tables = {n: {} for n in ("wav.scp", "utt2spk", "utt2emo", "utt2gender", "text")}
    try:
        texts = {} if a.no_text else read_arctic(Path(a.arctic_data) if a.arctic_data else root / "cmuarctic.data")
        speakers = sorted(d for d in root.iterdir() if d.is_dir()) if root.is_dir() else []
        unknown = [d for d in speakers if d.name not in SPEAKERS]
        if unknown or not speakers:
            raise LayoutError(f"{unknown[0] if unknown else root}: expected the speaker folders "
                              f"{', '.join(SPEAKERS)} (the sorted release, EmoV-DB_sorted)")
        for spk_dir in speakers:
            for emo_dir in sorted(d for d in spk_dir.iterdir() if d.is_dir()):
                emo = EMOTIONS.get(emo_dir.name.lower())
                if emo is None:
                    raise LayoutError(f"{emo_dir}: expected an emotion folder "
                                      f"({', '.join(e.capitalize() for e in EMOTIONS)})")
                for path in sorted(emo_dir.glob("*.wav")):
                    m = NAME.match(path.stem)
                    if not m:
                        raise LayoutError(f"{path}: expected <style>_<a>-<b>_<NNNN>.wav (e.g. anger_1-28_0011.wav)")
                    number = m.group(4)
                    if not a.no_text and number not in texts:
                        raise LayoutError(f"{path}: sentence arctic_a{number} is not in cmuarctic.data")
                    utt = f"{spk_dir.name}_{emo}_{path.stem}"  # the speaker first, as Kaldi's sorting wants
                    tables["wav.scp"][utt] = str(path.resolve())
                    tables["utt2spk"][utt] = spk_dir.name
                    tables["utt2emo"][utt] = emo
                    tables["utt2gender"][utt] = SPEAKERS[spk_dir.name]
                    if not a.no_text:
                        tables["text"][utt] = texts[number]
        if not tables["utt2spk"]:
            raise LayoutError(f"{root}: no <speaker>/<Emotion>/*.wav files")
    except LayoutError as err:
        print(f"prepare_emov_db.py: {err}", file=sys.stderr)
        return 1
    if a.no_text:
        del tables["text"]
    out = write_data_dir(a.out, tables)
    (out / "emotions.txt").write_text("".join(f"{e}\n" for e in EMOTIONS.values()))
    print(f"prepare_emov_db.py: {len(tables['utt2spk'])} utterances, {len(speakers)} speakers -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
