#!/usr/bin/env python3
"""MSP-Podcast release -> a Kaldi data directory for the 2025 challenge's categorical task (8 classes).

Usage: local/prepare_msp_podcast.py [--keep_no_agreement true|false] <msp_podcast_root> <out_dir>
       (--keep_no_agreement: default true, see "Which utterances are kept" below)

The release layout assumed (MSP-Podcast v1.12 as distributed; nothing else is read):
  Audios/<FileName>                 the recordings, e.g. MSP-PODCAST_0002_0033.wav (16 kHz)
  Labels/labels_consensus.csv       header FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set
      (further columns are ignored); EmoClass one letter: N neutral, H happy, S sad, A angry, D disgust,
      C contempt, F fear, U surprise, O other, X no agreement; EmoAct/EmoVal/EmoDom numbers; SpkrID a
      speaker number or "Unknown"; Gender Male, Female or Unknown; Split_Set Train, Development, Test1,
      Test2 or Test3 (Test3 is the 2025 challenge's test set: its labels are withheld, EmoClass and the
      attributes may be empty or X there, and nothing of a Test3 row but its split is checked)
  Labels/labels_detailed.csv        one row per annotation, header
      FileName,WorkerID,EmoClass_Major,EmoClass_Second,EmoAct,EmoVal,EmoDom (further columns ignored);
      EmoClass_Major a word (Neutral, Happy, Sad, Angry, Disgust, Contempt, Fear, Surprise, Other; case is
      ignored, and "Other-<anything>" counts as Other); EmoClass_Second a comma-separated list of words
      inside the quoted field (may be empty; its words outside the 8 classes -- Amused, Frustrated,
      Other, ... -- are ignored, a word repeated by one annotator counts once)
  Transcripts/<stem>.txt            the transcript of <stem>.wav, one line (every kept utterance has one)
Both CSV files are read with Python's csv module (UTF-8, a byte-order mark allowed). A missing folder or
file, a missing column, a row with too few fields, an unknown class letter or word, a split name
outside the five, a number that is not one, or a kept utterance without audio or transcript is an
error naming what was expected where (file and line).

Writes <out_dir>/ (every file sorted, Kaldi style):
  wav.scp utt2spk spk2utt utt2gender (m, f or unknown) text
  utt2emo         the consensus class as a code: neu hap sad ang dis con fea sur (emotions.txt, this order)
  utt2emo_dist    the annotators' votes, "utt neu:3 hap:1": each annotation's EmoClass_Major is one vote
                  for its class; Other votes are dropped. An utterance that has no vote left (no
                  annotation, or only Other) while its consensus is one of the 8 classes gets one vote for
                  its consensus class (the training's soft-label file must cover every utterance, and the
                  data directory's per-utterance files share one key set); such utterances are counted
  utt2emo2_dist   the secondary emotions, the same format: each annotation's EmoClass_Second words that
                  are among the 8 classes are one vote each. PARTIAL: an utterance without such a word has
                  no line (the file is carried through subsets but, unlike utt2emo_dist, not validated
                  against utt2spk)
  utt2avd         "utt act val dom", the consensus attributes as floats
  utt2split       Train, Development, Test1 or Test2 (speechser-make-folds --protocol split reads it)
  no_consensus    the ids of the kept utterances of consensus O or X (all of the Train split), one a line,
                  sorted; an empty file when there are none (--keep_no_agreement false). The data tools
                  carry it into formatted copies, feature directories and folds, cut to their utterances;
                  a training config with data.skip_file: no_consensus (the categorical baseline,
                  conf/train_ssl.yaml) leaves them out of its training set, the SAILER configs train on them
  emotions.txt

Utterance and speaker ids (Kaldi's rule: an utterance id starts with its speaker id, so that utt2spk
sorts the same by either): a known speaker is spk<SpkrID> (numbers zero-padded to 4 digits: spk0002) and
its utterances are spk0002-MSP-PODCAST_0002_0033; an utterance whose SpkrID is "Unknown" is its own
pseudo-speaker unk-<stem> (speaker id = utterance id, e.g. unk-MSP-PODCAST_0153_0012), so speaker-level
CMVN and speaker-disjoint protocols never pool unrelated unknown speakers.

Which utterances are kept:
- Test3 (the challenge test set, no labels) is left out of data/all (an unlabelled set is a separate job);
- consensus O (other) and X (no agreement) of the Train split are kept by default (--keep_no_agreement
  true), for soft-label training as SAILER (paper 004) trains on every sample: with their plurality class
  among the annotators' 8-class votes as utt2emo (ties broken by the class order above), listed in
  no_consensus so that a categorical system can leave them out (data.skip_file); those of the other
  splits are excluded (scoring needs a consensus label), as are those without any 8-class vote.
  --keep_no_agreement false excludes every O/X utterance (no_consensus is then empty), as the
  challenge's categorical baseline prepares its data.
Counts per split and per class, and of what was excluded and why, are printed.
"""

from __future__ import annotations

import csv
import math
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from speechser.data.soft_labels import format_label_votes
from speechser.io.datadir import check_key, DataDirError, write_kv, write_spk2utt

CLASSES = ["neu", "hap", "sad", "ang", "dis", "con", "fea", "sur"]
LETTERS = {"N": "neu", "H": "hap", "S": "sad", "A": "ang", "D": "dis", "C": "con", "F": "fea", "U": "sur",
           "O": "other", "X": "no agreement"}
LETTER_NAMES = {"N": "neutral", "H": "happy", "S": "sad", "A": "angry", "D": "disgust", "C": "contempt",
                "F": "fear", "U": "surprise", "O": "other", "X": "no agreement"}
WORDS = {"neutral": "neu", "happy": "hap", "sad": "sad", "angry": "ang", "disgust": "dis", "contempt": "con",
         "fear": "fea", "surprise": "sur", "other": "other"}
SPLITS = ["Train", "Development", "Test1", "Test2", "Test3"]
CONSENSUS_COLS = ["FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender", "Split_Set"]
DETAILED_COLS = ["FileName", "WorkerID", "EmoClass_Major", "EmoClass_Second", "EmoAct", "EmoVal", "EmoDom"]
GENDERS = {"male": "m", "female": "f", "unknown": "unknown"}
PROG = "prepare_msp_podcast.py"


def fail(msg: str) -> None:
    print(f"{PROG}: error: {msg}", file=sys.stderr)
    sys.exit(1)


def read_csv(path: Path, columns: Sequence[str]):
    """Yield ``(line, row)`` of a CSV file whose header has ``columns`` (in any order, others ignored)."""
    if not path.is_file():
        fail(f"{path}: no such file (expected the release's {path.parent.name}/{path.name} with the header "
             f"{','.join(columns)})")
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            fail(f"{path}:1: empty file (expected the header {','.join(columns)})")
        header = [h.strip() for h in header]
        missing = [c for c in columns if c not in header]
        if missing:
            fail(f"{path}:1: missing column '{missing[0]}' (expected the header {','.join(columns)}; "
                 f"got {','.join(header)})")
        index = {c: header.index(c) for c in columns}
        need = max(index.values()) + 1
        for fields in reader:
            if not fields:
                continue
            if len(fields) < need:
                fail(f"{path}:{reader.line_num}: {len(fields)} field(s), expected {len(header)} "
                     f"({','.join(header)})")
            yield reader.line_num, {c: fields[i].strip() for c, i in index.items()}


def number(value: str, where: str, column: str) -> float:
    try:
        x = float(value)
    except ValueError:
        x = float("nan")
    if not math.isfinite(x):
        fail(f"{where}: {column} '{value}' is not a number")
    return x


def speaker_and_utt(spk: str, stem: str, where: str) -> tuple:
    if spk.lower() == "unknown" or not spk:
        utt = f"unk-{stem}"
        return utt, utt
    spk = f"spk{int(spk):04d}" if spk.isdigit() else f"spk{spk}"
    try:
        check_key(spk, f"{where} (SpkrID)")
    except DataDirError as err:
        fail(str(err))
    return spk, f"{spk}-{stem}"


def read_consensus(path: Path) -> Dict[str, dict]:
    out: Dict[str, dict] = {}
    for n, row in read_csv(path, CONSENSUS_COLS):
        where = f"{path}:{n}"
        name, split = row["FileName"], row["Split_Set"]
        if not name.endswith(".wav") or "/" in name or len(name) <= 4:
            fail(f"{where}: FileName '{name}' is not a file name <stem>.wav (e.g. MSP-PODCAST_0002_0033.wav)")
        if name in out:
            fail(f"{where}: FileName '{name}' again (first on line {out[name]['line']})")
        if split not in SPLITS:
            fail(f"{where}: Split_Set '{split}' is not one of {', '.join(SPLITS)}")
        rec = {"line": n, "name": name, "split": split}
        out[name] = rec
        if split == "Test3":
            continue  # the challenge test set: labels withheld
        letter = row["EmoClass"]
        if letter not in LETTERS:
            fail(f"{where}: EmoClass '{letter}' is not a class letter (expected one of "
                 f"{', '.join(f'{k} {v}' for k, v in LETTER_NAMES.items())})")
        gender = GENDERS.get(row["Gender"].lower())
        if gender is None:
            fail(f"{where}: Gender '{row['Gender']}' is not Male, Female or Unknown")
        spk, utt = speaker_and_utt(row["SpkrID"], name[:-4], where)
        rec.update(letter=letter, gender=gender, spk=spk, utt=utt,
                   avd=" ".join(f"{number(row[c], where, c):g}" for c in ("EmoAct", "EmoVal", "EmoDom")))
    if not out:
        fail(f"{path}: no rows")
    return out


def class_of(word: str) -> Optional[str]:
    w = word.strip().lower()
    if w in WORDS:
        return WORDS[w]
    if w.startswith(("other-", "other:", "other ")):
        return "other"
    return None


def read_detailed(path: Path, known: Dict[str, dict]):
    """-> (major votes, secondary votes): file name -> Counter of class codes (Other left out)."""
    major: Dict[str, Counter] = defaultdict(Counter)
    second: Dict[str, Counter] = defaultdict(Counter)
    n_rows = n_other = n_unknown_file = 0
    for n, row in read_csv(path, DETAILED_COLS):
        where = f"{path}:{n}"
        n_rows += 1
        cls = class_of(row["EmoClass_Major"])
        if cls is None:
            fail(f"{where}: EmoClass_Major '{row['EmoClass_Major']}' is not a class word (expected one of "
                 f"{', '.join(w.capitalize() for w in WORDS)})")
        if row["FileName"] not in known:
            n_unknown_file += 1
            continue
        if cls == "other":
            n_other += 1
        else:
            major[row["FileName"]][cls] += 1
        words = {class_of(w) for w in row["EmoClass_Second"].split(",") if w.strip()}
        for c in words - {None, "other"}:
            second[row["FileName"]][c] += 1
    print(f"{PROG}: {path.name}: {n_rows} annotations, {n_other} Other vote(s) dropped"
          + (f", {n_unknown_file} of files not in labels_consensus.csv ignored" if n_unknown_file else ""))
    return major, second


def in_class_order(votes: Counter) -> Dict[str, int]:
    return {c: votes[c] for c in CLASSES if votes[c] > 0}


def main(root: Path, out: Path, keep_no_agreement: bool) -> None:
    for sub in ("Audios", "Labels", "Transcripts"):
        if not (root / sub).is_dir():
            fail(f"{root}: not an MSP-Podcast release: no folder {root / sub} (expected Audios/, Labels/ "
                 f"and Transcripts/)")
    consensus = read_consensus(root / "Labels/labels_consensus.csv")
    major, second = read_detailed(root / "Labels/labels_detailed.csv", consensus)
    rows: Dict[str, dict] = {}
    excluded: Counter = Counter()
    fallback = 0
    for name, rec in consensus.items():
        where = f"{root / 'Labels/labels_consensus.csv'}:{rec['line']}"
        if rec["split"] == "Test3":
            excluded["Test3 (the challenge test set, labels withheld)"] += 1
            continue
        votes = major.get(name, Counter())
        letter = rec["letter"]
        if letter in ("O", "X"):
            why = f"consensus {letter} ({LETTERS[letter]})"
            if not keep_no_agreement:
                excluded[why] += 1
                continue
            if rec["split"] != "Train":
                excluded[f"{why}, not in Train"] += 1
                continue
            if not votes:
                excluded[f"{why}, no vote among the 8 classes"] += 1
                continue
            emo = max(CLASSES, key=lambda c: (votes[c], -CLASSES.index(c)))  # plurality, ties by class order
        else:
            emo = LETTERS[letter]
            if not votes:
                votes = Counter({emo: 1})
                fallback += 1
        wav = root / "Audios" / name
        if not wav.is_file():
            fail(f"{where}: no audio {wav}")
        trans = root / "Transcripts" / f"{name[:-4]}.txt"
        if not trans.is_file():
            fail(f"{where}: no transcript {trans}")
        text = " ".join(trans.read_text(encoding="utf-8", errors="replace").split())
        rows[rec["utt"]] = dict(rec, emo=emo, wav=str(wav.resolve()), text=text,
                                dist=format_label_votes(in_class_order(votes)),
                                dist2=format_label_votes(in_class_order(second.get(name, Counter()))))
    if not rows:
        fail(f"{root}: no utterance left (every one excluded: "
             + "; ".join(f"{k} {v}" for k, v in excluded.items()) + ")")
    out.mkdir(parents=True, exist_ok=True)
    for fname, field in (("wav.scp", "wav"), ("utt2spk", "spk"), ("utt2gender", "gender"), ("text", "text"),
                         ("utt2emo", "emo"), ("utt2emo_dist", "dist"), ("utt2avd", "avd"), ("utt2split", "split")):
        write_kv(out / fname, {u: r[field] for u, r in rows.items()})
    write_kv(out / "utt2emo2_dist", {u: r["dist2"] for u, r in rows.items() if r["dist2"]})
    no_consensus = sorted(u for u, r in rows.items() if r["letter"] in ("O", "X"))
    (out / "no_consensus").write_text("".join(f"{u}\n" for u in no_consensus))
    spk2utt: Dict[str, List[str]] = defaultdict(list)
    for u in sorted(rows):
        spk2utt[rows[u]["spk"]].append(u)
    write_spk2utt(out / "spk2utt", spk2utt)
    (out / "emotions.txt").write_text("".join(f"{c}\n" for c in CLASSES))

    n_unk = sum(r["spk"] == r["utt"] for r in rows.values())
    print(f"{PROG}: {len(rows)} utterances, {len(spk2utt)} speakers ({n_unk} of them per-utterance "
          f"pseudo-speakers of SpkrID Unknown) -> {out}")
    for split in SPLITS[:4]:
        in_split = [r for r in rows.values() if r["split"] == split]
        if not in_split:
            continue
        counts = Counter(r["emo"] for r in in_split)
        print(f"{PROG}:   {split}: {len(in_split)}: " + " ".join(f"{c} {counts[c]}" for c in CLASSES))
    counts = Counter(r["emo"] for r in rows.values())
    print(f"{PROG}:   all: " + " ".join(f"{c} {counts[c]}" for c in CLASSES))
    if keep_no_agreement:
        print(f"{PROG}: kept {len(no_consensus)} Train utterance(s) of consensus O/X with their plurality class "
              f"(--keep_no_agreement true), listed in no_consensus (data.skip_file: no_consensus leaves them out)")
    n2 = sum(bool(r["dist2"]) for r in rows.values())
    print(f"{PROG}: utt2emo2_dist: {n2} of {len(rows)} utterances have secondary-emotion votes")
    if fallback:
        print(f"{PROG}: {fallback} utterance(s) without an 8-class annotator vote: utt2emo_dist holds one "
              f"vote for their consensus class")
    for why, k in excluded.items():
        print(f"{PROG}: excluded {k}: {why}")


def parse_bool(value: str) -> bool:
    if value not in ("true", "false"):
        fail(f"--keep_no_agreement: expected true or false, got '{value}'")
    return value == "true"


if __name__ == "__main__":
    args = sys.argv[1:]
    keep = True
    if len(args) >= 2 and args[0] in ("--keep_no_agreement", "--keep-no-agreement"):
        keep = parse_bool(args[1])
        args = args[2:]
    elif args and args[0].startswith(("--keep_no_agreement=", "--keep-no-agreement=")):
        keep = parse_bool(args[0].split("=", 1)[1])
        args = args[1:]
    if len(args) != 2:
        fail("usage: prepare_msp_podcast.py [--keep_no_agreement true|false] <msp_podcast_root> <out_dir>")
    main(Path(args[0]), Path(args[1]), keep)
