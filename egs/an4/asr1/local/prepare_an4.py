#!/usr/bin/env python3
"""AN4 as distributed -> Kaldi data directories ``train_nodev``, ``train_dev`` and ``test``.

Reads ``etc/an4_{train,test}.transcription`` (``[<s>] TEXT [</s>] (utt-id)``
lines) and ``etc/an4_{train,test}.fileids`` (paths under ``wav/`` without
``.sph``). Utterance ids are ``<speaker>-<file id>`` so that they sort by
speaker, as Kaldi requires. The last ``--dev-count`` training utterances in
sorted order (100, as ESPnet's recipe holds out) form ``train_dev``.

An audio file named in a fileids list that does not exist, a transcription
line that does not parse, or a transcript without a fileids entry is an
error naming file and line; a fileids entry without a transcript is skipped,
and every such skip is printed and counted.
"""

import argparse
import re
import sys
from pathlib import Path

from speechser.io.datadir import utt2spk_to_spk2utt, write_kv, write_spk2utt

LINE = re.compile(r"^(?:<s>\s*)?(.*?)\s*(?:</s>)?\s*\(([^()\s]+)\)\s*$")


def read_transcription(path: Path) -> dict:
    out = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        m = LINE.match(line.strip())
        if not m:
            raise SystemExit(f"prepare_an4.py: {path}:{lineno}: cannot parse '{line}'")
        text, fid = m.groups()
        if fid in out:
            raise SystemExit(f"prepare_an4.py: {path}:{lineno}: utterance '{fid}' appears twice")
        out[fid] = " ".join(text.split())
    return out


def read_fileids(path: Path, wav_root: Path) -> dict:
    out = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        rel = line.strip()
        if not rel:
            continue
        sph = wav_root / f"{rel}.sph"
        if not sph.is_file():
            raise SystemExit(f"prepare_an4.py: {path}:{lineno}: audio '{sph}' does not exist")
        out[Path(rel).name] = sph.resolve()
    return out


def write_dir(out: Path, entries: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_kv(out / "wav.scp", {u: str(p) for u, (p, _, _) in entries.items()})
    write_kv(out / "text", {u: t for u, (_, t, _) in entries.items()})
    utt2spk = {u: s for u, (_, _, s) in entries.items()}
    write_kv(out / "utt2spk", utt2spk)
    write_spk2utt(out / "spk2utt", utt2spk_to_spk2utt(utt2spk))


def collect(an4: Path, part: str) -> dict:
    trans = read_transcription(an4 / "etc" / f"an4_{part}.transcription")
    files = read_fileids(an4 / "etc" / f"an4_{part}.fileids", an4 / "wav")
    unknown = sorted(set(trans) - set(files))
    if unknown:
        raise SystemExit(f"prepare_an4.py: {part}: transcript for '{unknown[0]}' has no fileids entry")
    untranscribed = sorted(set(files) - set(trans))
    for fid in untranscribed:
        print(f"prepare_an4.py: {part}: skip '{fid}': no transcript", file=sys.stderr)
    if untranscribed:
        print(f"prepare_an4.py: {part}: skipped {len(untranscribed)} untranscribed file(s)", file=sys.stderr)
    entries = {}
    for fid, text in trans.items():
        spk = fid.split("-")[1]
        entries[f"{spk}-{fid}"] = (files[fid], text, spk)
    return entries


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("an4", type=Path)
    p.add_argument("data", type=Path, help="writes <data>/{train_nodev,train_dev,test}")
    p.add_argument("--dev-count", type=int, default=100)
    a = p.parse_args()
    train = collect(a.an4, "train")
    test = collect(a.an4, "test")
    keys = sorted(train)
    dev_keys = set(keys[-a.dev_count:]) if a.dev_count > 0 else set()
    write_dir(a.data / "train_nodev", {k: v for k, v in train.items() if k not in dev_keys})
    write_dir(a.data / "train_dev", {k: v for k, v in train.items() if k in dev_keys})
    write_dir(a.data / "test", test)
    print(f"prepare_an4.py: train_nodev {len(train) - len(dev_keys)}, train_dev {len(dev_keys)}, test {len(test)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
