"""Small releases of RAVDESS and CREMA-D built from Emo-DB's real audio, in exactly the layouts their
distributors ship (folder and file names, CSV headers and columns, sample rates), for the recipes'
end-to-end tests (issue 16). Deterministic: the same Emo-DB gives the same files, byte for byte.

- RAVDESS (Audio_Speech_Actors_01-24.zip): ``Actor_AA/03-01-EE-II-SS-RR-AA.wav``, 48 kHz 16-bit mono.
- CREMA-D: ``AudioWAV/<ActorID>_<SEN>_<EMO>_<LVL>.wav`` 16 kHz 16-bit mono, ``VideoDemographics.csv``
  (ActorID,Age,Sex,Race,Ethnicity) and ``processedResults/tabulatedVotes.csv`` (an unnamed row-id column
  whose first digit is the rating modality, 1 voice, 2 face, 3 audio-visual, then
  A,D,F,H,N,S,fileName,numResponses,agreement,emoVote and the mean-level columns).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import numpy as np
import soundfile

from speechser.io.audio import read_audio_source, resample


def emodb_clips(emodb: Path, speaker: str, letter: str, n: int, skip: int = 0) -> List[Path]:
    """The ``n`` Emo-DB files of ``speaker`` with emotion ``letter`` after the first ``skip`` (sorted)."""
    found = sorted(emodb.glob(f"wav/{speaker}???{letter}?.wav"))[skip:skip + n]
    assert len(found) == n, (speaker, letter, n)
    return found


def write_resampled(src: Path, dst: Path, rate: int) -> None:
    samples, orig = read_audio_source(str(src), src.stem)
    dst.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(dst), resample(samples, orig, rate), rate, subtype="PCM_16")


#: RAVDESS actors of the fixture and the Emo-DB speakers voicing them (odd actors male, as 11 and 15).
RAVDESS_ACTORS = {"01": "11", "06": "13", "09": "15", "14": "16"}
#: RAVDESS emotion codes of the fixture -> (Emo-DB letter voicing them, files of that letter skipped):
#: calm <- boredom, and surprised <- two further anger clips (Emo-DB has no surprise).
RAVDESS_EMOTIONS = {"01": ("N", 0), "02": ("L", 0), "03": ("F", 0), "04": ("T", 0), "05": ("W", 0), "06": ("A", 0),
                    "07": ("E", 0), "08": ("W", 2)}


def build_ravdess(emodb: Path, root: Path) -> Dict[str, str]:
    """``root/Actor_AA/03-01-EE-II-SS-01-AA.wav`` for 4 actors x 8 emotions x 2 statements (the second
    at strong intensity except for neutral); returns file stem -> the Emo-DB file it was made from."""
    made = {}
    for actor, spk in RAVDESS_ACTORS.items():
        for emo, (letter, skip) in RAVDESS_EMOTIONS.items():
            for i, src in enumerate(emodb_clips(emodb, spk, letter, 2, skip)):
                intensity = "02" if i == 1 and emo != "01" else "01"
                stem = f"03-01-{emo}-{intensity}-0{i + 1}-01-{actor}"
                write_resampled(src, root / f"Actor_{actor}" / f"{stem}.wav", 48000)
                made[stem] = src.name
    return made


#: CREMA-D actors of the fixture -> (Emo-DB speaker voicing them, Sex, Age).
CREMA_ACTORS = {"1001": ("11", "Male", "51"), "1002": ("13", "Female", "21"), "1003": ("15", "Male", "33"),
                "1004": ("16", "Female", "42")}
#: CREMA-D emotion codes -> (Emo-DB letter, tabulatedVotes column).
CREMA_EMOTIONS = {"ANG": ("W", "A"), "DIS": ("E", "D"), "FEA": ("A", "F"), "HAP": ("F", "H"), "NEU": ("N", "N"),
                  "SAD": ("T", "S")}
CREMA_SENTENCES = ["IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI"]
VOTE_HEADER = ["", "A", "D", "F", "H", "N", "S", "fileName", "numResponses", "agreement", "emoVote", "meanEmoResp",
               "meanAngerResp", "meanDisgustResp", "meanFearResp", "meanHappyResp", "meanNeutralResp", "meanSadResp",
               "medianEmoResp", "meanEmoRespNorm", "meanAngerRespNorm", "meanDisgustRespNorm", "meanFearRespNorm",
               "meanHappyRespNorm", "meanNeutralRespNorm", "meanSadRespNorm", "medianEmoRespNorm"]
#: A clip whose WAV has no samples, as 1076_MTI_SAD_XX of the real release.
CREMA_EMPTY = "1004_MTI_SAD_XX"


def crema_voice_votes(stem: str, k: int) -> Dict[str, int]:
    """The voice raters' counts of clip ``k``: 5 for the intended emotion, 2 for the next in A..S order, and
    for every third clip 1 for the one after."""
    cols = ["A", "D", "F", "H", "N", "S"]
    intended = CREMA_EMOTIONS[stem.split("_")[2]][1]
    i = cols.index(intended)
    votes = {c: 0 for c in cols}
    votes[intended] = 5
    votes[cols[(i + 1) % 6]] = 2
    if k % 3 == 0:
        votes[cols[(i + 2) % 6]] = 1
    return votes


def build_crema_d(emodb: Path, root: Path) -> List[str]:
    """``root/AudioWAV`` (4 actors x 6 emotions x 2 clips, 16 kHz, plus the empty ``CREMA_EMPTY``),
    ``root/VideoDemographics.csv`` and ``root/processedResults/tabulatedVotes.csv`` (voice, face and
    audio-visual blocks; the face and audio-visual raters all answer neutral, so a recipe reading the wrong
    block is caught); returns the clip stems."""
    import csv

    stems = []
    for actor, (spk, _, _) in CREMA_ACTORS.items():
        for emo, (letter, _) in CREMA_EMOTIONS.items():
            for i, src in enumerate(emodb_clips(emodb, spk, letter, 2)):
                level = ("HI" if i == 0 else "XX") if emo != "NEU" else "XX"
                stem = f"{actor}_{CREMA_SENTENCES[(len(stems) + i) % 12]}_{emo}_{level}"
                write_resampled(src, root / "AudioWAV" / f"{stem}.wav", 16000)
                stems.append(stem)
    soundfile.write(str(root / "AudioWAV" / f"{CREMA_EMPTY}.wav"), np.zeros(0, dtype=np.float32), 16000,
                    subtype="PCM_16")
    stems.append(CREMA_EMPTY)
    with open(root / "VideoDemographics.csv", "w", newline="") as f:
        f.write("ActorID,Age,Sex,Race,Ethnicity\n")
        for actor, (_, sex, age) in CREMA_ACTORS.items():
            f.write(f"{actor},{age},{sex},Caucasian,Not Hispanic\n")
    (root / "processedResults").mkdir()
    with open(root / "processedResults/tabulatedVotes.csv", "w", newline="") as f:
        w = csv.writer(f, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
        w.writerow(VOTE_HEADER)
        for block in (1, 2, 3):
            for k, stem in enumerate(stems, 1):
                votes = crema_voice_votes(stem, k) if block == 1 else {c: (6 if c == "N" else 0) for c in "ADFHNS"}
                n = sum(votes.values())
                top = max(votes.values())
                vote = ":".join(c for c in "ADFHNS" if votes[c] == top)
                w.writerow([str(block * 100000 + k), *votes.values(), stem, n, top / n, vote,
                            *([55.5] + [-1] * 6 + [60] + [50.2] + [-1] * 6 + [58])])
    return stems


#: Vietnamese prompts (upper case, as VIVOS writes them) given to some fixture utterances, written with
#: combining marks (NFD) so that the recipe's NFC normalization shows; the others keep AN4's English text.
VIVOS_PROMPTS = ["KHÁCH SẠN", "CHỈ BẰNG CÁCH LUÔN NỖ LỰC THÌ CUỐI CÙNG BẠN MỚI ĐƯỢC ĐỀN ĐÁP"]


def an4_utterances(an4: Path) -> List[tuple]:
    """AN4's training utterances in file order: (speaker, sphere path, transcript)."""
    import re

    texts = {}
    for line in (an4 / "etc/an4_train.transcription").read_text().splitlines():
        m = re.match(r"^<s>\s*(.*?)\s*</s>\s*\((\S+)\)$", line.strip())
        if m:
            texts[m.group(2)] = m.group(1)
    out = []
    for fid in (an4 / "etc/an4_train.fileids").read_text().split():
        stem = fid.split("/")[-1]
        if stem in texts:
            out.append((fid.split("/")[1], an4 / "wav" / f"{fid}.sph", texts[stem]))
    return out


def build_vivos(an4: Path, root: Path, train_speakers: int = 4, test_speakers: int = 2, per_speaker: int = 5
                ) -> Dict[str, str]:
    """``root/{train,test}/{prompts.txt,genders.txt,waves/<spk>/<utt>.wav}`` (16 kHz) from AN4's speakers
    in turn (train VIVOSSPK01.., test VIVOSDEV01..); returns utt -> its prompt as written."""
    import unicodedata
    from collections import defaultdict

    by_spk: Dict[str, list] = defaultdict(list)
    for spk, sph, text in an4_utterances(an4):
        by_spk[spk].append((sph, text))
    speakers = [s for s in sorted(by_spk) if len(by_spk[s]) >= per_speaker][: train_speakers + test_speakers]
    prompts = {}
    for part, names in (("train", [f"VIVOSSPK{i + 1:02d}" for i in range(train_speakers)]),
                        ("test", [f"VIVOSDEV{i + 1:02d}" for i in range(test_speakers)])):
        d = root / part
        lines, genders = [], []
        for name, an4_spk in zip(names, speakers[:train_speakers] if part == "train" else speakers[train_speakers:]):
            genders.append(f"{name} {'f' if an4_spk.startswith('f') else 'm'}")
            for j, (sph, text) in enumerate(by_spk[an4_spk][:per_speaker]):
                utt = f"{name}_R{j + 1:03d}"
                if j < len(VIVOS_PROMPTS):
                    text = unicodedata.normalize("NFD", VIVOS_PROMPTS[j])
                write_resampled(sph, d / "waves" / name / f"{utt}.wav", 16000)
                lines.append(f"{utt} {text}")
                prompts[utt] = text
        (d / "prompts.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (d / "genders.txt").write_text("\n".join(genders) + "\n", encoding="utf-8")
    return prompts


#: EmoV-DB speakers of the fixture -> the Emo-DB speaker voicing them; josh has no angry or disgusted
#: folder, as in the release.
EMOV_SPEAKERS = {"bea": "13", "jenie": "14", "josh": "15", "sam": "11"}
#: EmoV-DB emotion folders -> (style word of the file names, Emo-DB letter voicing them).
EMOV_EMOTIONS = {"Amused": ("amused", "F"), "Angry": ("anger", "W"), "Disgusted": ("disgust", "E"),
                 "Neutral": ("neutral", "N"), "Sleepy": ("sleepiness", "L")}


def build_emov_db(emodb: Path, root: Path) -> Dict[str, str]:
    """``root/<speaker>/<Emotion>/<style>_1-15_<NNNN>.wav`` (16 kHz, 2 per folder) and ``root/cmuarctic.data``
    in CMU Arctic's format (the fixture's own sentences, arctic_a0001 .. a0012, and two arctic_b lines);
    returns utterance id (as the recipe names it) -> sentence number."""
    made, n = {}, 0
    codes = {"Amused": "amu", "Angry": "ang", "Disgusted": "dis", "Neutral": "neu", "Sleepy": "sle"}
    for spk, src_spk in EMOV_SPEAKERS.items():
        for folder, (style, letter) in EMOV_EMOTIONS.items():
            if spk == "josh" and folder in ("Angry", "Disgusted"):
                continue
            for src in emodb_clips(emodb, src_spk, letter, 2):
                number = f"{n % 12 + 1:04d}"
                stem = f"{style}_1-15_{number}"
                write_resampled(src, root / spk / folder / f"{stem}.wav", 16000)
                made[f"{spk}_{codes[folder]}_{stem}"] = number
                n += 1
    lines = [f'( arctic_a{i:04d} "Sentence number {i}, said  with feeling." )' for i in range(1, 13)]
    lines += ['( arctic_b0001 "A b-set sentence, not used." )', '( arctic_b0002 "Another one." )']
    (root / "cmuarctic.data").write_text("\n".join(lines) + "\n")
    return made
