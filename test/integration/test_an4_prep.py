"""AN4 data preparation on the real corpus (the first stage of the coming AN4 ASR recipe)."""

import subprocess
import sys
from pathlib import Path

import soundfile

from speechser.io.datadir import read_kv, validate_data_dir

ROOT = Path(__file__).resolve().parents[2]


def test_prepare_an4(an4, tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "egs/an4/asr1/local/prepare_an4.py"), str(an4),
                           str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    n = {d: validate_data_dir(tmp_path / d, require_text=True) for d in ("train_nodev", "train_dev", "test")}
    assert n["train_nodev"] + n["train_dev"] == 948 and n["train_dev"] == 100
    # every listed test utterance is used (this copy lists 117 of the 130 .sph files under an4test_clstk)
    listed = sum(1 for ln in (an4 / "etc/an4_test.fileids").read_text().splitlines() if ln.strip())
    transcribed = sum(1 for ln in (an4 / "etc/an4_test.transcription").read_text().splitlines() if ln.strip())
    assert n["test"] == min(listed, transcribed)
    text = read_kv(tmp_path / "test/text")
    assert text["fjlp-an417-fjlp-b"] == "ENTER NINE ONE SIX NINE"
    assert "<s>" not in " ".join(read_kv(tmp_path / "train_nodev/text").values())
    x, sr = soundfile.read(read_kv(tmp_path / "test/wav.scp")["fjlp-an416-fjlp-b"])
    assert sr == 16000 and len(x) > 0
