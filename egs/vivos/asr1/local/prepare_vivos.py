#!/usr/bin/env python3
"""VIVOS as distributed -> Kaldi data directories ``train_nodev``, ``train_dev`` and ``test``.

The release root (``vivos/``) holds ``train/`` and ``test/``, each with ``prompts.txt`` (``<utt> <TEXT>``
lines, e.g. ``VIVOSSPK01_R001 KHÁCH SẠN``), ``genders.txt`` (``<speaker> m|f``) and
``waves/<speaker>/<utt>.wav`` (16 kHz), where ``<utt>`` starts with ``<speaker>_``. The text is
normalized as the VLSP recipe's (:func:`speechser.text.normalize.normalize_text`: Unicode NFC, one space
between words) and lower-cased (the prompts are upper case; one case halves the grapheme inventory).

VIVOS has no dev set: the last ``--dev-speakers`` training speakers in sorted order (4 of 46, so that
validation is speaker-independent as the test set is) form ``train_dev``, the others ``train_nodev``.
A prompt without its wave file, a wave file without a prompt, a speaker without a gender, or a line that
does not parse is an error naming file and line.
"""

import argparse
import re
import sys
from pathlib import Path

from speechser.io.datadir import write_data_dir
from speechser.text.normalize import normalize_text

SPEAKER = re.compile(r"^(VIVOS(?:SPK|DEV)\d\d)_\S+$")


class LayoutError(ValueError):
    """A file or line that is not where or what the release has."""


def read_part(part: Path) -> dict:
    """One part (``train`` or ``test``): utt -> (wav path, text, speaker, gender)."""
    for name in ("prompts.txt", "genders.txt", "waves"):
        if not (part / name).exists():
            raise LayoutError(f"{part / name}: no such file or folder (expected {part}/prompts.txt, genders.txt, "
                              "waves/<speaker>/<utt>.wav)")
    genders = {}
    for lineno, line in enumerate((part / "genders.txt").read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("m", "f"):
            raise LayoutError(f"{part / 'genders.txt'}:{lineno}: expected '<speaker> m|f', got {line!r}")
        genders[fields[0]] = fields[1]
    out = {}
    for lineno, line in enumerate((part / "prompts.txt").read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split(maxsplit=1)
        m = SPEAKER.match(fields[0])
        if len(fields) != 2 or not m:
            raise LayoutError(f"{part / 'prompts.txt'}:{lineno}: expected '<VIVOSSPKnn|VIVOSDEVnn>_<id> <TEXT>', "
                              f"got {line!r}")
        utt, spk = fields[0], m.group(1)
        wav = part / "waves" / spk / f"{utt}.wav"
        if not wav.is_file():
            raise LayoutError(f"{part / 'prompts.txt'}:{lineno}: no audio {wav}")
        if spk not in genders:
            raise LayoutError(f"{part / 'prompts.txt'}:{lineno}: speaker {spk} is not in {part / 'genders.txt'}")
        if utt in out:
            raise LayoutError(f"{part / 'prompts.txt'}:{lineno}: utterance {utt} appears twice")
        out[utt] = (str(wav.resolve()), normalize_text(fields[1], lowercase=True), spk, genders[spk])
    lost = sorted({p.stem for p in (part / "waves").glob("*/*.wav")} - set(out))
    if lost:
        raise LayoutError(f"{part / 'waves'}: {len(lost)} wave file(s) without a prompt in prompts.txt, e.g. {lost[0]}")
    if not out:
        raise LayoutError(f"{part / 'prompts.txt'}: no utterances")
    return out


def write_dir(out: Path, utts: dict) -> None:
    """``utts`` (utt -> (wav, text, speaker, gender)) as the data directory ``out``."""
    write_data_dir(out, {name: {u: v[i] for u, v in utts.items()}
                         for i, name in enumerate(("wav.scp", "text", "utt2spk", "utt2gender"))})


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("vivos", help="the release root (holds train/ and test/)")
    p.add_argument("out", help="the data/ folder to write train_nodev, train_dev and test into")
    p.add_argument("--dev-speakers", type=int, default=4, help="training speakers held out as train_dev")
    a = p.parse_args()
    try:
        train = read_part(Path(a.vivos) / "train")
        test = read_part(Path(a.vivos) / "test")
        speakers = sorted({v[2] for v in train.values()})
        if not 1 <= a.dev_speakers < len(speakers):
            raise LayoutError(f"--dev-speakers {a.dev_speakers}: the training set has {len(speakers)} speakers "
                              "(at least one must stay for training)")
    except LayoutError as err:
        print(f"prepare_vivos.py: {err}", file=sys.stderr)
        return 1
    dev = set(speakers[-a.dev_speakers:])
    parts = {"train_nodev": {u: v for u, v in train.items() if v[2] not in dev},
             "train_dev": {u: v for u, v in train.items() if v[2] in dev}, "test": test}
    out = Path(a.out)
    for name, utts in parts.items():
        write_dir(out / name, utts)
    print(f"prepare_vivos.py: train_nodev {len(parts['train_nodev'])}, train_dev {len(parts['train_dev'])} "
          f"({len(dev)} speakers), test {len(test)} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
