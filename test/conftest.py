"""Shared fixtures: tiny synthetic data directories and the real corpora's locations."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import pytest
import soundfile

ROOT = Path(__file__).resolve().parents[1]


def corpus_path(var: str, name: str) -> Optional[Path]:
    """``$SPEECHSER_<NAME>`` or ``../shared/corpora/<name>`` beside the checkout."""
    env = os.environ.get(var)
    if env and Path(env).is_dir():
        return Path(env)
    guess = ROOT.parent / "shared" / "corpora" / name
    return guess if guess.is_dir() else None


@pytest.fixture(scope="session")
def emodb() -> Path:
    path = corpus_path("SPEECHSER_EMODB", "emodb")
    if path is None:
        pytest.skip("Emo-DB not found (set SPEECHSER_EMODB)")
    return path


def write_tone(path: Path, seconds: float, rate: int = 16000, freq: float = 220.0) -> None:
    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(str(path), (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate, subtype="PCM_16")


def write_lines(path: Path, table: Dict[str, str]) -> None:
    path.write_text("".join(f"{k} {v}\n" for k, v in table.items()), encoding="utf-8")


@pytest.fixture
def make_data_dir(tmp_path: Path):
    """Build a small sorted data directory with real WAV files; returns its path.

    ``make_data_dir(n_spk=2, n_utt=3, seconds=1.0, rate=16000)``; utterances
    ``spkA-u0`` ... with alternating emotions ``ang``/``neu``.
    """

    def build(n_spk: int = 2, n_utt: int = 3, seconds: float = 1.0, rate: int = 16000, name: str = "data") -> Path:
        d = tmp_path / name
        wav_dir = tmp_path / f"{name}_wav"
        d.mkdir()
        wav_dir.mkdir()
        wav, utt2spk, utt2emo, text = {}, {}, {}, {}
        for s in range(n_spk):
            spk = f"spk{chr(ord('A') + s)}"
            for u in range(n_utt):
                utt = f"{spk}-u{u}"
                path = wav_dir / f"{utt}.wav"
                write_tone(path, seconds, rate, freq=200.0 + 50 * u + 10 * s)
                wav[utt] = str(path)
                utt2spk[utt] = spk
                utt2emo[utt] = "ang" if u % 2 == 0 else "neu"
                text[utt] = f"hello {u}"
        write_lines(d / "wav.scp", wav)
        write_lines(d / "utt2spk", utt2spk)
        write_lines(d / "utt2emo", utt2emo)
        write_lines(d / "text", text)
        spk2utt: Dict[str, list] = {}
        for utt, spk in utt2spk.items():
            spk2utt.setdefault(spk, []).append(utt)
        write_lines(d / "spk2utt", {s: " ".join(us) for s, us in spk2utt.items()})
        (d / "emotions.txt").write_text("ang\nneu\n")
        return d

    return build


@pytest.fixture
def make_feats_dir(make_data_dir):
    """A data directory with fbank features (40 bins), utt2num_frames and per-speaker cmvn.scp."""

    def build(n_spk: int = 2, n_utt: int = 4, seconds: float = 0.6, name: str = "feats") -> Path:
        from speechser.features.extract import extract_fbank, write_cmvn
        from speechser.features.fbank import FbankOptions
        from speechser.io.datadir import read_kv

        d = make_data_dir(n_spk=n_spk, n_utt=n_utt, seconds=seconds, name=name)
        extract_fbank(d, d / "raw", opts=FbankOptions(num_mel_bins=40))
        write_lines(d / "feats.scp", read_kv(d / "raw.scp"))
        write_lines(d / "utt2num_frames", read_kv(d / "raw.num_frames"))
        write_cmvn(d, per_speaker=True)
        return d

    return build


@pytest.fixture(scope="session")
def an4() -> Path:
    path = corpus_path("SPEECHSER_AN4", "an4")
    if path is None:
        pytest.skip("AN4 not found (set SPEECHSER_AN4)")
    return path
