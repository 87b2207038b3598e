"""A small MSP-Podcast release (v1.12 layout) built from Emo-DB audio.

MSP-Podcast is licensed by UT Dallas and cannot be shipped; its recipe (egs/msp_podcast/ser1) is tested on
this stand-in, written in exactly the layout the recipe's local/prepare_msp_podcast.py documents:

  MSP-Podcast/Audios/MSP-PODCAST_XXXX_YYYY.wav        16 kHz mono, 16 bit (Emo-DB resampled)
  MSP-Podcast/Labels/labels_consensus.csv             FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set
  MSP-Podcast/Labels/labels_detailed.csv              FileName,WorkerID,EmoClass_Major,EmoClass_Second,EmoAct,EmoVal,EmoDom
  MSP-Podcast/Transcripts/MSP-PODCAST_XXXX_YYYY.txt   one line (the Emo-DB sentence)

Emo-DB's emotions map onto the challenge's classes: W -> A (angry), L -> N (boredom as neutral-ish),
E -> D (disgust), A -> F (fear), F -> H (happy), T -> S (sad), N -> N; the 5 shortest files of each
letter (5 speakers in turn), split 3 Train, 1 Development, 1 Test1. Emo-DB has no contempt or surprise: 2 further files each
get consensus C or U through made-up annotations; 3 get O (other) and 2 X (no agreement); 3 are Test3
(labels withheld: EmoClass empty or X, attributes empty). Each labelled utterance has 3 to 5 annotations
whose majority is its consensus class, with some disagreement, some Other votes and some secondary
emotions (class words and words outside the 8 classes); one has no annotation at all. Speakers are Emo-DB's
(SpkrID 3, 8, ...) except two utterances with SpkrID Unknown. Deterministic: the same Emo-DB gives the same
release, byte for byte.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import soundfile

from recipe_helpers import emodb_facts
from speechser.io.audio import read_audio_source, resample

RATE = 16000
LETTER_OF_EMODB = {"W": "A", "L": "N", "E": "D", "A": "F", "F": "H", "T": "S", "N": "N"}
WORD = {"N": "Neutral", "H": "Happy", "S": "Sad", "A": "Angry", "D": "Disgust", "C": "Contempt", "F": "Fear",
        "U": "Surprise"}
SPLIT_CYCLE = ["Train", "Train", "Train", "Development", "Test1"]
#: The utterance whose votes the test checks by hand (consensus C): its annotations, (major, secondary).
HAND_CHECKED = "MSP-PODCAST_2000_0001.wav"
HAND_ROWS = [("Contempt", "Contempt,Disgust"), ("Contempt", "Amused"), ("Angry", ""), ("Other", "Angry, Annoyed"),
             ("Contempt", "disgust")]
#: A labelled utterance (consensus A, Train) with no annotation rows in labels_detailed.csv.
NO_ANNOTATIONS = "MSP-PODCAST_1000_0003.wav"
#: Special utterances: file name -> (consensus letter, split, annotations)
SPECIAL: Dict[str, Tuple[str, str, List[Tuple[str, str]]]] = {
    HAND_CHECKED: ("C", "Train", HAND_ROWS),
    "MSP-PODCAST_2000_0002.wav": ("C", "Development", [("Contempt", ""), ("Contempt", ""), ("Neutral", "Sad")]),
    "MSP-PODCAST_2000_0003.wav": ("U", "Train", [("Surprise", "Happy"), ("Surprise", ""), ("Happy", ""),
                                                 ("Surprise", "Fear")]),
    "MSP-PODCAST_2000_0004.wav": ("U", "Test1", [("Surprise", ""), ("Surprise", ""), ("Fear", "")]),
    # O and X: kept only in Train (unless --keep_no_agreement false), with the plurality class
    "MSP-PODCAST_2001_0001.wav": ("O", "Train", [("Other", ""), ("Other", ""), ("Other", ""), ("Happy", ""),
                                                 ("Sad", "")]),  # hap:1 sad:1, tie -> hap (class order)
    "MSP-PODCAST_2001_0002.wav": ("O", "Development", [("Other", ""), ("Other", ""), ("Neutral", "")]),
    "MSP-PODCAST_2001_0003.wav": ("O", "Train", [("Other", ""), ("Other", ""), ("Other", "Amused")]),  # no vote
    "MSP-PODCAST_2002_0001.wav": ("X", "Train", [("Angry", ""), ("Sad", ""), ("Sad", "Angry"), ("Angry", ""),
                                                 ("Neutral", "")]),  # ang:2 sad:2, tie -> sad (class order)
    "MSP-PODCAST_2002_0002.wav": ("X", "Test1", [("Happy", ""), ("Sad", ""), ("Neutral", "")]),
    # the challenge test set: labels withheld
    "MSP-PODCAST_3000_0001.wav": ("", "Test3", []),
    "MSP-PODCAST_3000_0002.wav": ("", "Test3", []),
    "MSP-PODCAST_3000_0003.wav": ("X", "Test3", []),
}
UNKNOWN_SPEAKER = {"MSP-PODCAST_1004_0001.wav": "Male", "MSP-PODCAST_2000_0003.wav": "Unknown"}
SECONDARY = ["", "Amused,Happy", "Concerned", "", "Sad, Frustrated", ""]
AVD = {"N": (4.0, 4.2, 4.0), "H": (5.2, 5.8, 4.6), "S": (2.6, 2.4, 3.0), "A": (5.8, 2.2, 5.4), "D": (4.4, 2.8, 4.8),
       "C": (4.0, 3.0, 5.0), "F": (5.0, 2.6, 3.2), "U": (5.6, 4.8, 4.2), "O": (4.0, 4.0, 4.0), "X": (4.4, 3.8, 4.2)}


GENDER, SENTENCES = emodb_facts()


def _plan(emodb_wav: Path) -> List[Tuple[str, str, str, str]]:
    """``[(file_name, emodb_name, consensus_letter, split)]``: 5 of each Emo-DB emotion, then the specials."""
    durations = {p.stem: soundfile.info(str(p)).duration for p in sorted(emodb_wav.glob("*.wav"))}
    taken: set = set()
    plan = []
    speakers = sorted(GENDER)
    for k, letter in enumerate("WLEAFTN"):
        for j in range(5):  # the shortest file of each of 5 speakers in turn (the next speaker if one has none)
            for m in range(len(speakers)):
                spk = speakers[(k + j + m) % len(speakers)]
                cands = sorted((d, n) for n, d in durations.items() if n[:2] == spk and n[5] == letter)
                if cands:
                    break
            name = cands[0][1]
            taken.add(name)
            plan.append((f"MSP-PODCAST_{1000 + k:04d}_{j + 1:04d}.wav", name, LETTER_OF_EMODB[letter],
                         SPLIT_CYCLE[j]))
    spare = [n for _, n in sorted((d, n) for n, d in durations.items() if n not in taken)]
    for i, (fname, (letter, split, _)) in enumerate(SPECIAL.items()):
        plan.append((fname, spare[i], letter, split))
    return plan


def _annotations(i: int, letter: str) -> List[Tuple[str, str]]:
    """3-5 annotations with majority ``letter``: some disagreement, some Other, some secondary words."""
    n = 3 + i % 3
    word = WORD[letter]
    other = "Sad" if letter == "N" else "Neutral"
    majors = [word] * n
    if n >= 4:
        majors[-1] = other  # a dissenting vote
    if i % 4 == 3:
        majors[0 if n == 3 else 1] = "Other"  # an Other vote (dropped by the recipe)
        if n == 3:
            majors[0], majors[1], majors[2] = "Other", word, word
    return [(m, SECONDARY[(i + k) % len(SECONDARY)]) for k, m in enumerate(majors)]


def build_msp_podcast_release(root: Path, emodb_wav_dir: Path) -> Path:
    """Write ``root/MSP-Podcast`` from the Emo-DB recordings in ``emodb_wav_dir``; returns the release's path."""
    release = Path(root) / "MSP-Podcast"
    for sub in ("Audios", "Labels", "Transcripts"):
        (release / sub).mkdir(parents=True, exist_ok=True)
    consensus = [["FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender", "Split_Set"]]
    detailed = [["FileName", "WorkerID", "EmoClass_Major", "EmoClass_Second", "EmoAct", "EmoVal", "EmoDom"]]
    for i, (fname, name, letter, split) in enumerate(sorted(_plan(Path(emodb_wav_dir)))):
        samples, rate = read_audio_source(str(Path(emodb_wav_dir) / f"{name}.wav"), key=name)
        samples = resample(samples, rate, RATE)
        soundfile.write(str(release / "Audios" / fname), np.clip(samples, -1.0, 1.0), RATE, subtype="PCM_16")
        (release / "Transcripts" / f"{fname[:-4]}.txt").write_text(SENTENCES[name[2:5]] + "\n", encoding="utf-8")
        spk, gender = str(int(name[:2])), {"f": "Female", "m": "Male"}[GENDER[name[:2]]]
        if fname in UNKNOWN_SPEAKER:
            spk, gender = "Unknown", UNKNOWN_SPEAKER[fname]
        if split == "Test3":
            consensus.append([fname, letter, "", "", "", "Unknown", "Unknown", split])
            continue
        act, val, dom = AVD[letter]
        consensus.append([fname, letter, f"{act:.1f}", f"{val:.1f}", f"{dom:.1f}", spk, gender, split])
        if fname == NO_ANNOTATIONS:
            continue
        rows = SPECIAL[fname][2] if fname in SPECIAL else _annotations(i, letter)
        for k, (major, second) in enumerate(rows):
            detailed.append([fname, f"WORKER{(7 * i + 3 * k) % 97 + 1:05d}", major, second,
                             str(round(act) + k % 2 - 1 or 1), str(round(val)), str(round(dom))])
    for path, table in (("Labels/labels_consensus.csv", consensus), ("Labels/labels_detailed.csv", detailed)):
        with open(release / path, "w", encoding="utf-8", newline="") as f:
            csv.writer(f, lineterminator="\n").writerows(table)
    return release
