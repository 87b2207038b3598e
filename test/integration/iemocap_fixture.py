"""A small IEMOCAP_full_release built from Emo-DB audio, in exactly the release's layout.

IEMOCAP is licensed by USC and cannot be shipped; its recipe is tested on this stand-in instead:

  IEMOCAP_full_release/Session{1..5}/dialog/EmoEvaluation/<dialog>.txt
      "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", a blank line, then per utterance
      "[6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]", its annotator
      lines ("C-E2:<TAB>Neutral;<TAB>()", "A-E3:<TAB>val 3; act 2; dom  2;<TAB>()") and a blank line
  IEMOCAP_full_release/Session{1..5}/dialog/transcriptions/<dialog>.txt
      "Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me." (and off-turn lines without an id, "M: [LAUGHTER]")
  IEMOCAP_full_release/Session{1..5}/sentences/wav/<dialog>/<utterance>.wav   (16 kHz mono, 16 bit)

Emo-DB's 5 female and 5 male speakers are paired into sessions 1..5 (one of each, in speaker order);
W -> ang, F -> hap (every second one of a speaker exc, which the recipe merges into hap), T -> sad,
N -> neu; L/E/A -> fru/sur/xxx, which the recipe must drop. Sentences a* go to the session's improvised
dialog Ses0<s>F_impro01, b* to its scripted dialog Ses0<s>M_script01_1; the utterance's last field names
its speaker's gender (F000, M001, ...), as in the release. Time stamps follow the file durations.
Deterministic: the same Emo-DB gives the same release, byte for byte.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import soundfile

from recipe_helpers import emodb_facts
from speechser.io.audio import read_audio_source, resample


GENDER, SENTENCES = emodb_facts()
FEMALE = sorted(s for s, g in GENDER.items() if g == "f")
MALE = sorted(s for s, g in GENDER.items() if g == "m")
KEPT = [("W", "ang"), ("F", "hap"), ("T", "sad"), ("N", "neu")]  # per_speaker slots cycle over these
DROPPED = [("L", "fru"), ("E", "sur"), ("A", "xxx")]
# the categorical annotators' words and a typical dimensional rating [V, A, D] per code
WORDS = {"neu": "Neutral", "hap": "Happiness", "exc": "Excited", "ang": "Anger", "sad": "Sadness",
         "fru": "Frustration", "sur": "Surprise", "fea": "Fear", "dis": "Disgust", "oth": "Other"}
VAD = {"neu": (2.5, 2.5, 2.5), "hap": (4.0, 3.5, 3.0), "exc": (4.0, 4.0, 3.5), "ang": (1.5, 4.0, 4.0),
       "sad": (1.5, 2.0, 2.0), "fru": (2.0, 3.5, 3.5), "sur": (3.5, 4.0, 2.5), "xxx": (2.5, 3.0, 3.0)}
RATE = 16000


def _select(files: Dict[str, float], spk: str, index: int, per_speaker: int) -> List[Tuple[str, str]]:
    """``[(emodb_name, iemocap_code)]`` of one speaker: ``per_speaker`` of the 4 classes (the shortest
    files, alternating improvised and scripted sentences), then 2 that the recipe must drop."""
    def pick(letter: str, prefer: str) -> str | None:
        cands = sorted((d, n) for n, d in files.items() if n[:2] == spk and n[5] == letter and n not in taken)
        for kind in (prefer, "b" if prefer == "a" else "a"):
            for _, name in cands:
                if name[2] == kind:
                    return name
        return None

    taken: Dict[str, str] = {}
    n_hap = 0
    for j in range(per_speaker):
        letter, code = KEPT[j % len(KEPT)]
        name = pick(letter, "a" if (j + index) % 2 == 0 else "b")
        if name is None:
            raise ValueError(f"Emo-DB speaker {spk} has too few '{letter}' utterances for per_speaker={per_speaker}")
        if code == "hap":
            code = "exc" if n_hap % 2 == 1 else "hap"
            n_hap += 1
        taken[name] = code
    n_dropped = 0
    for k in range(len(DROPPED)):
        letter, code = DROPPED[(index + k) % len(DROPPED)]
        name = pick(letter, "a" if k % 2 == 0 else "b")
        if name is not None:
            taken[name] = code
            n_dropped += 1
        if n_dropped == 2:
            break
    return list(taken.items())


def _eval_block(start: float, end: float, utt: str, code: str, n: int) -> str:
    v, a, d = VAD[code]
    if code == "xxx":  # no majority among the annotators
        cats = ["Anger", "Sadness", "Neutral"]
    else:
        other = "Neutral" if code != "neu" else "Frustration"
        cats = [WORDS[code], WORDS[code], other if n % 2 else WORDS[code]]
    lines = [f"[{start:.4f} - {end:.4f}]\t{utt}\t{code}\t[{v:.4f}, {a:.4f}, {d:.4f}]"]
    lines += [f"C-E{i + 1}:\t{c};\t()" for i, c in enumerate(cats)]
    lines += [f"A-E{i + 1}:\tval {round(v)}; act {round(a)}; dom  {round(d)};\t()" for i in range(2)]
    return "\n".join(lines) + "\n\n"


def build_iemocap_release(root: Path, emodb: Path, per_speaker: int = 6) -> Path:
    """Write ``root/IEMOCAP_full_release`` from the Emo-DB at ``emodb``; returns the release's path."""
    release = Path(root) / "IEMOCAP_full_release"
    files = {p.stem: soundfile.info(str(p)).duration for p in sorted((Path(emodb) / "wav").glob("*.wav"))}
    for s, (f_spk, m_spk) in enumerate(zip(FEMALE, MALE), 1):
        sess = release / f"Session{s}"
        dialogs = {"a": f"Ses0{s}F_impro01", "b": f"Ses0{s}M_script01_1"}
        chosen: Dict[str, List[Tuple[str, str, str]]] = {d: [] for d in dialogs.values()}  # (name, code, gender)
        for i, (spk, gender) in enumerate(((f_spk, "F"), (m_spk, "M"))):
            for name, code in _select(files, spk, 2 * (s - 1) + i, per_speaker):
                chosen[dialogs[name[2]]].append((name, code, gender))
        for dialog, utts in chosen.items():
            # the two actors take turns: interleave F and M, each in Emo-DB name order
            by_gender = {g: sorted(u for u in utts if u[2] == g) for g in "FM"}
            order = [u for pair in zip(by_gender["F"], by_gender["M"]) for u in pair]
            n_pairs = len(order) // 2
            order += by_gender["F"][n_pairs:] + by_gender["M"][n_pairs:]
            wav_dir = sess / "sentences/wav" / dialog
            wav_dir.mkdir(parents=True, exist_ok=True)
            evaluation = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"]
            transcript = []
            t = 1.2
            counts = {"F": 0, "M": 0}
            for n, (name, code, gender) in enumerate(order):
                utt = f"{dialog}_{gender}{counts[gender]:03d}"
                counts[gender] += 1
                samples, rate = read_audio_source(str(Path(emodb) / "wav" / f"{name}.wav"), key=name)
                samples = resample(samples, rate, RATE)
                soundfile.write(str(wav_dir / f"{utt}.wav"), np.clip(samples, -1.0, 1.0), RATE, subtype="PCM_16")
                start, end = t, t + len(samples) / RATE
                evaluation.append(_eval_block(start, end, utt, code, n))
                transcript.append(f"{utt} [{start:08.4f}-{end:08.4f}]: {SENTENCES[name[2:5]]}\n")
                if n == 1:  # off-turn speech without an utterance id: not an utterance
                    transcript.append(f"{'M' if gender == 'F' else 'F'}: [LAUGHTER]\n")
                t = end + 0.85
            for sub, lines in (("EmoEvaluation", evaluation), ("transcriptions", transcript)):
                (sess / "dialog" / sub).mkdir(parents=True, exist_ok=True)
                (sess / "dialog" / sub / f"{dialog}.txt").write_text("".join(lines), encoding="utf-8")
    return release
