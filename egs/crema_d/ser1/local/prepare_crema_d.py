#!/usr/bin/env python3
"""CREMA-D as distributed -> a Kaldi data directory, with the crowd's votes as soft labels.

The release root holds:
- ``AudioWAV/<ActorID>_<SEN>_<EMO>_<LVL>.wav`` (16 kHz): ActorID 1001 .. 1091, SEN one of the 12 sentence codes
  (IEO TIE IOM IWW TAI MTI IWL ITH DFA ITS TSI WSI), EMO the intended emotion (ANG DIS FEA HAP NEU SAD), LVL
  its level (LO MD HI, XX unspecified);
- ``VideoDemographics.csv``, header ``ActorID,Age,Sex,Race,Ethnicity`` (Sex Male or Female): every actor of
  AudioWAV needs a row;
- ``processedResults/tabulatedVotes.csv``: a first, unnamed row-id column whose first digit is the rating
  modality (1 voice only, 2 face only, 3 audio-visual: the queryType codes of the distributor's README; each
  block holds every clip once), then ``A,D,F,H,N,S`` (the count of raters choosing each emotion),
  ``fileName`` (the clip's stem), ``numResponses``, ... (further columns ignored).

Writes wav.scp, utt2spk, spk2utt, utt2emo (the intended emotion), utt2gender, utt2age, utt2intensity, text,
utt2session, emotions.txt (``ang dis fea hap neu sad``) and, unless ``--votes none``, ``utt2emo_dist``: the
votes of the chosen modality's raters (``--votes voice``, the default: the raters who heard the audio alone,
which is what an audio model sees) as ``label:count`` pairs. A clip without a row of that modality, or a
row without a single vote, is an error naming it. ``utt2session`` puts the actors, in ActorID order, into ``--speaker_groups`` (10)
contiguous groups of near-equal size: ``ser.sh --protocol losess`` is then the 10-fold speaker-independent
protocol. A file or row off this layout is an error naming it (and the CSV line) and what was expected.
"""

import argparse
import csv
import re
import sys
from pathlib import Path

from speechser.data.soft_labels import format_label_votes
from speechser.io.datadir import write_data_dir

EMOTIONS = {"ANG": "ang", "DIS": "dis", "FEA": "fea", "HAP": "hap", "NEU": "neu", "SAD": "sad"}
VOTE_COLUMNS = {"A": "ang", "D": "dis", "F": "fea", "H": "hap", "N": "neu", "S": "sad"}
LEVELS = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}
SENTENCES = {
    "IEO": "it's eleven o'clock", "TIE": "that is exactly what happened", "IOM": "i'm on my way to the meeting",
    "IWW": "i wonder what this is about", "TAI": "the airplane is almost full",
    "MTI": "maybe tomorrow it will be cold", "IWL": "i would like a new alarm clock",
    "ITH": "i think i have a doctor's appointment", "DFA": "don't forget a jacket",
    "ITS": "i think i've seen this before", "TSI": "the surface is slick", "WSI": "we'll stop in a couple of minutes",
}
MODALITY = {"voice": "1", "face": "2", "audiovisual": "3"}
NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")
DEMOGRAPHICS = ("ActorID", "Age", "Sex", "Race", "Ethnicity")


class LayoutError(ValueError):
    """A file, folder or row that is not where or what the release has."""


def read_csv(path: Path, required) -> list:
    """``path``'s rows as (line number, dict); the header must hold ``required``."""
    if not path.is_file():
        raise LayoutError(f"{path}: no such file (expected in the release root, as distributed)")
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise LayoutError(f"{path}:1: header {reader.fieldnames} lacks column(s) {missing} "
                              f"(expected {', '.join(required)})")
        return [(i, row) for i, row in enumerate(reader, start=2)]


def read_demographics(path: Path) -> dict:
    """ActorID -> (gender m/f, age)."""
    out = {}
    for line, row in read_csv(path, DEMOGRAPHICS):
        sex = row["Sex"].strip()
        if sex not in ("Male", "Female") or not row["Age"].strip().isdigit():
            raise LayoutError(f"{path}:{line}: expected Sex Male or Female and a whole Age, got "
                              f"{sex!r}, {row['Age']!r}")
        out[row["ActorID"].strip()] = ("m" if sex == "Male" else "f", row["Age"].strip())
    return out


def read_votes(path: Path, modality: str) -> dict:
    """fileName -> {label: count} for the rows of ``modality`` (the row id's first digit)."""
    out = {}
    for line, row in read_csv(path, ["", *VOTE_COLUMNS, "fileName", "numResponses"]):
        row_id = row[""].strip()
        if row_id[:1] not in MODALITY.values():
            raise LayoutError(f"{path}:{line}: row id {row_id!r} does not start with 1, 2 or 3 (the rating modality)")
        if row_id[0] != MODALITY[modality]:
            continue
        try:
            votes = {label: int(row[c]) for c, label in VOTE_COLUMNS.items()}
        except ValueError:
            raise LayoutError(f"{path}:{line}: the counts A..S must be whole numbers") from None
        if sum(votes.values()) == 0:
            raise LayoutError(f"{path}:{line}: clip {row['fileName']} has no votes")
        out[row["fileName"].strip()] = votes
    return out


def speaker_groups(actors, n: int) -> dict:
    """Actors (sorted by ActorID) -> ``grp<k>``, ``n`` contiguous groups of near-equal size."""
    actors = sorted(actors)
    n = min(n, len(actors))
    return {a: f"grp{i * n // len(actors) + 1:02d}" for i, a in enumerate(actors)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("crema_d", help="the release root (holds AudioWAV/, VideoDemographics.csv, processedResults/)")
    p.add_argument("out", help="data directory to write")
    p.add_argument("--votes", choices=(*MODALITY, "none"), default="voice",
                   help="whose votes become utt2emo_dist (default: the raters of the audio alone)")
    p.add_argument("--speaker_groups", type=int, default=10, help="actor groups in utt2session (losess folds)")
    a = p.parse_args()
    root = Path(a.crema_d)
    tables = {n: {} for n in ("wav.scp", "utt2spk", "utt2emo", "utt2gender", "utt2age", "utt2intensity", "text")}
    try:
        wav_dir = root / "AudioWAV"
        files = sorted(wav_dir.glob("*.wav"))
        if not files:
            raise LayoutError(f"{wav_dir}: no .wav files (expected AudioWAV/<ActorID>_<SEN>_<EMO>_<LVL>.wav)")
        demo = read_demographics(root / "VideoDemographics.csv")
        for path in files:
            m = NAME.match(path.stem)
            if not m or m.group(2) not in SENTENCES or m.group(3) not in EMOTIONS or m.group(4) not in LEVELS:
                raise LayoutError(f"{path}: expected <ActorID>_<SEN>_<EMO>_<LVL>.wav with SEN one of "
                                  f"{' '.join(SENTENCES)}, EMO one of {' '.join(EMOTIONS)}, LVL one of {' '.join(LEVELS)}")
            actor, sen, emo, lvl = m.groups()
            if actor not in demo:
                raise LayoutError(f"{path}: actor {actor} has no row in {root / 'VideoDemographics.csv'}")
            utt = path.stem  # starts with the 4-digit actor id: sorted by utterance is sorted by speaker
            tables["wav.scp"][utt] = str(path.resolve())
            tables["utt2spk"][utt] = actor
            tables["utt2emo"][utt] = EMOTIONS[emo]
            tables["utt2gender"][utt], tables["utt2age"][utt] = demo[actor]
            tables["utt2intensity"][utt] = LEVELS[lvl]
            tables["text"][utt] = SENTENCES[sen]
        if a.votes != "none":
            votes_file = root / "processedResults/tabulatedVotes.csv"
            votes = read_votes(votes_file, a.votes)
            lost = [u for u in tables["utt2emo"] if u not in votes]
            if lost:
                raise LayoutError(f"{votes_file}: no {a.votes} votes for {len(lost)} clip(s), e.g. {lost[0]}")
            tables["utt2emo_dist"] = {u: format_label_votes(votes[u]) for u in tables["utt2emo"]}  # keys in label order
    except LayoutError as err:
        print(f"prepare_crema_d.py: {err}", file=sys.stderr)
        return 1
    groups = speaker_groups(set(tables["utt2spk"].values()), a.speaker_groups)
    tables["utt2session"] = {u: groups[s] for u, s in tables["utt2spk"].items()}
    out = write_data_dir(a.out, tables)
    (out / "emotions.txt").write_text("".join(f"{e}\n" for e in EMOTIONS.values()))
    print(f"prepare_crema_d.py: {len(tables['utt2spk'])} clips, {len(groups)} actors in "
          f"{len(set(groups.values()))} groups -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
