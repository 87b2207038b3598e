#!/usr/bin/env python3
"""IEMOCAP release -> a Kaldi data directory for 4-class emotion recognition.

Usage: local/prepare_iemocap.py <IEMOCAP_full_release> <out_dir>

Reads the release as distributed:
  Session{1..5}/dialog/EmoEvaluation/<dialog>.txt   lines "[start - end]<TAB><utt><TAB><emo><TAB>[V, A, D]"
  Session{1..5}/dialog/transcriptions/<dialog>.txt  lines "<utt> [start-end]: <words>"
  Session{1..5}/sentences/wav/<dialog>/<utt>.wav
and writes <out_dir>/{wav.scp, utt2spk, spk2utt, utt2emo, text, utt2gender, utt2style, utt2session,
emotions.txt}: the utterances labelled ang, hap, exc (merged into hap), sad or neu -- the common 4-class
set (5,531 utterances in the full release: hap 1,636, sad 1,084, ang 1,103, neu 1,708). The speaker is
the session and the gender letter of the utterance's last field (Ses01F_impro01_M012 -> speaker Ses01M,
gender m); the style is improvised or scripted from the dialog name; bracketed non-speech tags
([LAUGHTER]...) are removed from the transcripts. A dialog holds both actors' turns
(Ses01F_impro01 has Ses01F_impro01_F000 and Ses01F_impro01_M000), so the release's names do not sort by
speaker; the utterance ids are the names with the speaker before them, Kaldi's convention
(Ses01M-Ses01F_impro01_M012), which keeps utt2spk sorted both ways. A malformed line is an error
naming its file and line; an utterance without audio or transcript is an error naming it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Dict

LABELS = ["ang", "hap", "neu", "sad"]
MERGE = {"exc": "hap"}
EVAL_LINE = re.compile(r"^\[(\d+(?:\.\d+)?) - (\d+(?:\.\d+)?)\]\t(\S+)\t(\S+)\t\[[^\]]*\]\s*$")
TAG = re.compile(r"\[[A-Za-z]+\]")
TRANS_LINE = re.compile(r"^(Ses\d\d[FM]_\S+_[FM]\S*) \[[^\]]*\]:\s?(.*)$")


def fail(msg: str) -> None:
    print(f"prepare_iemocap.py: error: {msg}", file=sys.stderr)
    sys.exit(1)


def read_labels(path: Path) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.startswith("["):
            continue  # header, blank and annotator lines
        m = EVAL_LINE.match(line)
        if m is None:
            fail(f"{path}:{n}: expected '[start - end]<TAB>utterance<TAB>emotion<TAB>[V, A, D]', got {line!r}")
        out[m.group(3)] = m.group(4)
    return out


def read_transcripts(path: Path) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = TRANS_LINE.match(line.strip())
        if m is not None:  # other lines (off-turn speech, e.g. "M: [LAUGHTER]" without an id) are not utterances
            # Non-speech tags ([LAUGHTER], [BREATHING], [GARBAGE]...) are not words: they would be CTC targets
            # and BERT input that speech does not carry.
            out[m.group(1)] = " ".join(TAG.sub(" ", m.group(2)).split())
    return out


def main(root: Path, out: Path) -> None:
    sessions = [root / f"Session{i}" for i in range(1, 6)]
    missing = [str(s) for s in sessions if not (s / "dialog/EmoEvaluation").is_dir()]
    if missing:
        fail(f"not an IEMOCAP release: no {missing[0]}/dialog/EmoEvaluation")
    rows = {}
    for sess in sessions:
        for ev in sorted((sess / "dialog/EmoEvaluation").glob("*.txt")):
            dialog = ev.stem
            labels = read_labels(ev)
            trans_path = sess / "dialog/transcriptions" / f"{dialog}.txt"
            texts = read_transcripts(trans_path) if trans_path.is_file() else {}
            for utt, emo in sorted(labels.items()):
                emo = MERGE.get(emo, emo)
                if emo not in LABELS:
                    continue
                wav = sess / "sentences/wav" / dialog / f"{utt}.wav"
                if not wav.is_file():
                    fail(f"{ev}: utterance {utt}: no audio {wav}")
                if utt not in texts:
                    fail(f"{trans_path}: no transcript for utterance {utt}")
                gender = utt.split("_")[-1][0]
                spk = utt[:5] + gender
                rows[f"{spk}-{utt}"] = {"wav": str(wav.resolve()), "spk": spk, "emo": emo, "text": texts[utt],
                                        "gender": gender.lower(), "session": utt[:5],
                                        "style": "improvised" if "_impro" in utt else "scripted"}
    if not rows:
        fail(f"{root}: no utterance labelled {', '.join(LABELS)} (or exc)")
    out.mkdir(parents=True, exist_ok=True)
    keys = sorted(rows)

    def write(name: str, field: str) -> None:
        with open(out / name, "w", encoding="utf-8") as f:
            f.writelines(f"{k} {rows[k][field]}\n" for k in keys)

    for name, field in (("wav.scp", "wav"), ("utt2spk", "spk"), ("utt2emo", "emo"), ("text", "text"),
                        ("utt2gender", "gender"), ("utt2style", "style"), ("utt2session", "session")):
        write(name, field)
    spk2utt: Dict[str, list] = {}
    for k in keys:
        spk2utt.setdefault(rows[k]["spk"], []).append(k)
    with open(out / "spk2utt", "w") as f:
        f.writelines(f"{s} {' '.join(u)}\n" for s, u in sorted(spk2utt.items()))
    (out / "emotions.txt").write_text("".join(f"{x}\n" for x in LABELS))
    counts = {e: sum(rows[k]["emo"] == e for k in keys) for e in LABELS}
    print(f"prepare_iemocap.py: {len(keys)} utterances, {len(spk2utt)} speakers -> {out} "
          + " ".join(f"{e} {n}" for e, n in counts.items()))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        fail("usage: prepare_iemocap.py <IEMOCAP_full_release> <out_dir>")
    main(Path(sys.argv[1]), Path(sys.argv[2]))
