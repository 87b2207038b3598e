#!/usr/bin/env python3
"""Emo-DB as distributed (wav/SSTTTEV.wav) -> a Kaldi data directory.

File names: SS speaker, TTT sentence code, E emotion letter, V version letter.
Writes wav.scp, utt2spk, spk2utt, utt2emo, utt2gender, text, spk2gender and
the label list emotions.txt. A file whose name does not follow the pattern,
or names an unknown speaker, sentence or emotion, is an error naming it.

Soft labels (``utt2emo_dist``, SAILER's training, issue 13), where the corpus root has the listener test's
``erkennung.txt`` (tab-separated: number, file name, recognition rate in %, naturalness in %; 20 listeners,
``erklaerung.txt``): the intended emotion gets ``20 · rate`` votes and the other ``20 · (1 − rate)`` votes
are spread evenly over the six other emotions (the file gives only the rate, not which emotions the
listeners chose instead). An utterance without a rate there is an error naming it.
"""

import argparse
import re
import sys
from pathlib import Path

from speechser.data.soft_labels import format_label_votes
from speechser.io.datadir import utt2spk_to_spk2utt, write_kv, write_spk2utt

EMOTIONS = {"W": "ang", "L": "bor", "E": "dis", "A": "fea", "F": "hap", "T": "sad", "N": "neu"}
GENDER = {"03": "m", "08": "f", "09": "f", "10": "m", "11": "m", "12": "m", "13": "f", "14": "f", "15": "m", "16": "f"}
SENTENCES = {
    "a01": "Der Lappen liegt auf dem Eisschrank.",
    "a02": "Das will sie am Mittwoch abgeben.",
    "a04": "Heute abend könnte ich es ihm sagen.",
    "a05": "Das schwarze Stück Papier befindet sich da oben neben dem Holzstück.",
    "a07": "In sieben Stunden wird es soweit sein.",
    "b01": "Was sind denn das für Tüten, die da unter dem Tisch stehen?",
    "b02": "Sie haben es gerade hochgetragen und jetzt gehen sie wieder runter.",
    "b03": "An den Wochenenden bin ich jetzt immer nach Hause gefahren und habe Agnes besucht.",
    "b09": "Ich will das eben wegbringen und dann mit Karl was trinken gehen.",
    "b10": "Die wird auf dem Platz sein, wo wir sie immer hinlegen.",
}
LISTENERS = 20


def read_recognition_rates(path: Path) -> dict:
    """``erkennung.txt`` -> utterance id -> recognition rate in [0, 1]."""
    rates = {}
    for lineno, line in enumerate(path.read_text(encoding="latin-1").splitlines(), start=1):
        fields = [f.replace("\xa0", "").strip() for f in line.split("\t")]
        if lineno == 1 or not line.strip():
            continue  # the header: Nr. Satz erkannt natuerlich
        if len(fields) < 3 or not fields[1].endswith(".wav"):
            raise ValueError(f"{path}:{lineno}: expected 'number<TAB>file.wav<TAB>rate<TAB>naturalness'")
        rates[fields[1][: -len(".wav")]] = float(fields[2].replace(",", ".")) / 100.0
    return rates


def listener_votes(emotion: str, rate: float) -> dict:
    """The intended emotion's votes and the rest spread evenly (see the module docstring)."""
    others = [e for e in EMOTIONS.values() if e != emotion]
    votes = {e: LISTENERS * (1.0 - rate) / len(others) for e in others}
    votes[emotion] = LISTENERS * rate
    return {e: votes[e] for e in EMOTIONS.values()}


NAME = re.compile(r"^(\d\d)([ab]\d\d)([A-Z])([a-z])$")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("emodb", help="the corpus root (holds wav/)")
    p.add_argument("out", help="data directory to write")
    a = p.parse_args()
    wav_dir = Path(a.emodb) / "wav"
    files = sorted(wav_dir.glob("*.wav"))
    if not files:
        print(f"prepare_emodb.py: no .wav files in {wav_dir}", file=sys.stderr)
        return 1
    wav, utt2spk, utt2emo, utt2gender, text = {}, {}, {}, {}, {}
    for path in files:
        m = NAME.match(path.stem)
        if not m or m.group(1) not in GENDER or m.group(2) not in SENTENCES or m.group(3) not in EMOTIONS:
            print(f"prepare_emodb.py: {path}: name does not follow SSTTTEV with known codes", file=sys.stderr)
            return 1
        spk, sent, emo, _ = m.groups()
        utt = path.stem  # starts with the speaker id, as Kaldi's sorting convention wants
        wav[utt] = str(path.resolve())
        utt2spk[utt] = spk
        utt2emo[utt] = EMOTIONS[emo]
        utt2gender[utt] = GENDER[spk]
        text[utt] = SENTENCES[sent]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, table in (("wav.scp", wav), ("utt2spk", utt2spk), ("utt2emo", utt2emo),
                        ("utt2gender", utt2gender), ("text", text)):
        write_kv(out / name, table)
    write_spk2utt(out / "spk2utt", utt2spk_to_spk2utt(utt2spk))
    write_kv(out / "spk2gender", {s: GENDER[s] for s in set(utt2spk.values())})
    (out / "emotions.txt").write_text("".join(f"{e}\n" for e in EMOTIONS.values()))
    rates_file = Path(a.emodb) / "erkennung.txt"
    if rates_file.is_file():
        rates = read_recognition_rates(rates_file)
        lost = [u for u in utt2emo if u not in rates]
        if lost:
            print(f"prepare_emodb.py: {rates_file}: no recognition rate for {lost[0]}", file=sys.stderr)
            return 1
        write_kv(out / "utt2emo_dist", {u: format_label_votes(listener_votes(e, rates[u])) for u, e in utt2emo.items()})
    print(f"prepare_emodb.py: {len(wav)} utterances, {len(set(utt2spk.values()))} speakers -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
