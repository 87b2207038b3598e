#!/usr/bin/env python3
"""RAVDESS speech as distributed (Audio_Speech_Actors_01-24.zip) -> a Kaldi data directory.

The release root holds ``Actor_01`` .. ``Actor_24`` (directly, or inside ``Audio_Speech_Actors_01-24/``),
each with 60 files ``MM-VV-EE-II-SS-RR-AA.wav`` (48 kHz, 16-bit): modality MM (03 audio-only), vocal channel
VV (01 speech; 02 song is another archive and is refused here), emotion EE (01 neutral, 02 calm, 03 happy,
04 sad, 05 angry, 06 fearful, 07 disgust, 08 surprised), intensity II (01 normal, 02 strong; neutral has no
strong), statement SS (01 "Kids are talking by the door", 02 "Dogs are sitting by the door"), repetition RR
(01, 02) and actor AA (01 .. 24; odd male, even female), which must be the folder's number.

Writes wav.scp, utt2spk, spk2utt, utt2emo, utt2gender, utt2intensity, utt2session, text, spk2gender and
emotions.txt. ``--classes 8`` keeps the eight emotions; ``--classes 7`` drops calm (the common variant of
the literature, 1,248 of the 1,440 files). ``utt2session`` groups the actors in sixes of four (actors
01-04 -> grp1, ..., 21-24 -> grp6): ``ser.sh --protocol losess`` is then the 6-fold speaker-independent
protocol. A file or folder off this layout is an error naming it and what was expected.
"""

import argparse
import re
import sys
from pathlib import Path

from speechser.io.datadir import write_data_dir, write_kv

EMOTIONS = {"01": "neu", "02": "cal", "03": "hap", "04": "sad", "05": "ang", "06": "fea", "07": "dis", "08": "sur"}
INTENSITY = {"01": "normal", "02": "strong"}
STATEMENTS = {"01": "kids are talking by the door", "02": "dogs are sitting by the door"}
NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")
ACTOR_DIR = re.compile(r"^Actor_(\d\d)$")
ACTORS_PER_GROUP = 4


class LayoutError(ValueError):
    """A file or folder that is not where or what the release has."""


def actor_dirs(root: Path) -> list:
    """The ``Actor_XX`` folders of the release root (or of its ``Audio_Speech_Actors_01-24/``)."""
    for base in (root, root / "Audio_Speech_Actors_01-24"):
        found = sorted(p for p in base.glob("Actor_*") if p.is_dir())
        if found:
            return found
    raise LayoutError(f"{root}: no Actor_01 .. Actor_24 folders (expected <root>/Actor_XX/03-01-EE-II-SS-RR-XX.wav, "
                      "the unpacked Audio_Speech_Actors_01-24.zip)")


def parse(path: Path, actor: str) -> dict:
    """The seven fields of one file name, checked."""
    m = NAME.match(path.stem)
    if not m or path.suffix != ".wav":
        raise LayoutError(f"{path}: expected a name MM-VV-EE-II-SS-RR-AA.wav (seven two-digit fields)")
    modality, channel, emo, intensity, statement, repetition, aa = m.groups()
    problems = []
    if modality != "03":
        problems.append(f"modality {modality} is not 03 (audio-only)")
    if channel != "01":
        problems.append(f"vocal channel {channel} is not 01 (speech; the song archive is not supported)")
    if emo not in EMOTIONS:
        problems.append(f"emotion {emo} is not 01..08")
    if intensity not in INTENSITY or (emo == "01" and intensity == "02"):
        problems.append(f"intensity {intensity} is not 01 or 02 (neutral: 01 only)")
    if statement not in STATEMENTS:
        problems.append(f"statement {statement} is not 01 or 02")
    if repetition not in ("01", "02"):
        problems.append(f"repetition {repetition} is not 01 or 02")
    if aa != actor:
        problems.append(f"actor {aa} is not the folder's Actor_{actor}")
    if problems:
        raise LayoutError(f"{path}: " + "; ".join(problems))
    return {"emo": EMOTIONS[emo], "intensity": INTENSITY[intensity], "text": STATEMENTS[statement],
            "gender": "m" if int(actor) % 2 else "f"}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ravdess", help="the release root (holds Actor_01 .. Actor_24)")
    p.add_argument("out", help="data directory to write")
    p.add_argument("--classes", type=int, choices=(7, 8), default=8, help="8 emotions, or 7 without calm")
    a = p.parse_args()
    tables = {n: {} for n in ("wav.scp", "utt2spk", "utt2emo", "utt2gender", "utt2intensity", "utt2session", "text")}
    try:
        for d in actor_dirs(Path(a.ravdess)):
            m = ACTOR_DIR.match(d.name)
            if not m or not 1 <= int(m.group(1)) <= 24:
                raise LayoutError(f"{d}: expected a folder Actor_01 .. Actor_24")
            actor = m.group(1)
            files = sorted(d.glob("*.wav"))
            if not files:
                raise LayoutError(f"{d}: no .wav files (expected 60 MM-VV-EE-II-SS-RR-{actor}.wav)")
            for path in files:
                fields = parse(path, actor)
                if a.classes == 7 and fields["emo"] == "cal":
                    continue
                spk = f"actor{actor}"
                utt = f"{spk}_{path.stem}"  # the speaker first, as Kaldi's sorting wants
                tables["wav.scp"][utt] = str(path.resolve())
                tables["utt2spk"][utt] = spk
                tables["utt2emo"][utt] = fields["emo"]
                tables["utt2gender"][utt] = fields["gender"]
                tables["utt2intensity"][utt] = fields["intensity"]
                tables["utt2session"][utt] = f"grp{(int(actor) - 1) // ACTORS_PER_GROUP + 1}"
                tables["text"][utt] = fields["text"]
    except LayoutError as err:
        print(f"prepare_ravdess.py: {err}", file=sys.stderr)
        return 1
    out = write_data_dir(a.out, tables)
    utt2spk = tables["utt2spk"]
    write_kv(out / "spk2gender", {utt2spk[u]: g for u, g in tables["utt2gender"].items()})
    labels = [e for e in EMOTIONS.values() if a.classes == 8 or e != "cal"]
    (out / "emotions.txt").write_text("".join(f"{e}\n" for e in labels))
    print(f"prepare_ravdess.py: {len(utt2spk)} utterances, {len(set(utt2spk.values()))} actors, "
          f"{len(labels)} classes -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
