"""Packed models and speechser-infer used carelessly or with hostile files: no code runs from a model
archive or an input list, no output replaces an input, a doctored meta.json or a tiny file that claims
gigabytes is refused, and inputs that all fail end in one clear line."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Callable, Dict, Optional

import pytest
import torch

from conftest import write_lines, write_tone
from speechser.config import ConfigError, read_yaml
from speechser.io.datadir import DataDirError
from speechser.pack.archive import META, PackError, archive_task, read_archive, sha256_of, write_archive
from speechser.train.checkpoint import (CheckpointError, average_checkpoints, load_checkpoint, load_init_params,
                                        rng_state, set_rng_state)


class _RunsCode:
    """Unpickling this object runs ``touch <marker>``: what a doctored weights file carries."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# -- fixtures: one trained and packed tiny SER model for the whole module ------------------------------------
@pytest.fixture(scope="module")
def packed(tmp_path_factory) -> Dict[str, Path]:
    """A tiny SER model trained for one epoch on tones, packed: ``arc`` (the archive), ``exp`` (the
    experiment), ``data`` (a labelled data directory with wav.scp, utt2spk, utt2emo) and ``wav`` (its audio)."""
    from speechser.features.extract import extract_fbank, write_cmvn
    from speechser.features.fbank import FbankOptions
    from speechser.io.datadir import read_kv
    from speechser.pack.packed_ser import pack_ser
    from speechser.tasks.ser import load_ser_config, train_ser

    root = tmp_path_factory.mktemp("packed")
    d, wav_dir = root / "data", root / "wav"
    d.mkdir()
    wav_dir.mkdir()
    wav, utt2spk, utt2emo = {}, {}, {}
    for s, spk in enumerate(("spkA", "spkB")):
        for u in range(4):
            utt = f"{spk}-u{u}"
            write_tone(wav_dir / f"{utt}.wav", 0.8, freq=200.0 + 60 * u + 10 * s)
            wav[utt], utt2spk[utt], utt2emo[utt] = str(wav_dir / f"{utt}.wav"), spk, "ang" if u % 2 else "neu"
    write_lines(d / "wav.scp", wav)
    write_lines(d / "utt2spk", utt2spk)
    write_lines(d / "utt2emo", utt2emo)
    write_lines(d / "spk2utt", {s: " ".join(u for u in utt2spk if utt2spk[u] == s) for s in ("spkA", "spkB")})
    (d / "emotions.txt").write_text("ang\nneu\n")
    feats = root / "feats"
    feats.mkdir()
    for name in ("wav.scp", "utt2spk", "spk2utt", "utt2emo", "emotions.txt"):
        (feats / name).write_bytes((d / name).read_bytes())
    extract_fbank(feats, feats / "raw", opts=FbankOptions(num_mel_bins=40))
    write_lines(feats / "feats.scp", read_kv(feats / "raw.scp"))
    write_lines(feats / "utt2num_frames", read_kv(feats / "raw.num_frames"))
    write_cmvn(feats, per_speaker=True)
    conf = load_ser_config(None, [
        "--data.train_dir", str(feats), "--data.valid_dir", str(feats), "--data.label_list",
        str(feats / "emotions.txt"), "--model.conf.channels", "16", "--model.conf.embed_dim", "8",
        "--trainer.max_epochs", "1", "--trainer.keep_nbest", "1", "--trainer.average_nbest", "1", "--seed", "0"])
    train_ser(conf, root / "exp")
    arc = pack_ser(root / "exp", root / "model.tar", min_duration=0.5)
    return {"arc": arc, "exp": root / "exp", "data": d, "wav": wav_dir}


def _rewrite(src: Path, dst: Path, edit: Callable[[str, bytes], Optional[bytes]],
             meta_edit: Optional[Callable[[dict], None]] = None) -> Path:
    """Copy an archive member by member (``edit(name, data) -> data``), recomputing the checksums in
    meta.json as a tamperer would, then ``meta_edit(meta)``."""
    with tarfile.open(src) as tar:
        members = {i.name: tar.extractfile(i).read() for i in tar.getmembers()}
    meta = json.loads(members.pop(META))
    members = {n: edit(n, d) for n, d in members.items()}
    meta["files"] = {n: sha256_of(d) for n, d in members.items()}
    if meta_edit is not None:
        meta_edit(meta)
    with tarfile.open(dst, "w") as tar:
        for name, data in [(META, json.dumps(meta).encode()), *members.items()]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return dst


def _infer(*args: object, cwd: Optional[Path] = None) -> subprocess.CompletedProcess:
    code = "import sys; from speechser.bin.infer import main; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


# -- nothing in a model file or an input list runs as code ---------------------------------------------------
def test_a_weights_file_that_would_run_code_is_refused_everywhere_weights_are_read(tmp_path):
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pt"
    torch.save({"w": torch.ones(2), "x": _RunsCode(marker)}, evil)
    with pytest.raises(CheckpointError, match=r"refused: it holds Python objects \(posix.system"):
        load_checkpoint(evil)
    with pytest.raises(CheckpointError, match="refused"):
        average_checkpoints([evil, evil])
    with pytest.raises(CheckpointError, match="refused"):
        load_init_params(torch.nn.Linear(2, 2), [str(evil)])
    assert not marker.exists()


def test_a_packed_model_whose_weights_run_code_is_refused_and_nothing_runs(packed, tmp_path):
    from speechser.pack.packed_ser import PackedSER

    marker = tmp_path / "ran"

    def payload(name: str, data: bytes) -> bytes:
        if name != "model.pt":
            return data
        state = torch.load(io.BytesIO(data), weights_only=True)
        state["extra"] = _RunsCode(marker)
        buf = io.BytesIO()
        torch.save(state, buf)
        return buf.getvalue()

    bad = _rewrite(packed["arc"], tmp_path / "bad.tar", payload)
    with pytest.raises(PackError, match=r"cannot be loaded: .*refused: it holds Python objects"):
        PackedSER(bad, device="cpu")
    assert not marker.exists()


def test_resume_checkpoints_hold_only_tensors_and_plain_values_and_older_ones_still_load(tmp_path):
    import random

    import numpy as np

    state = rng_state()
    torch.save({"rng": state}, tmp_path / "new.pt")
    assert torch.serialization.get_unsafe_globals_in_checkpoint(tmp_path / "new.pt") == []
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(load_checkpoint(tmp_path / "new.pt")["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a
    # a checkpoint written before numpy's state was stored as a tensor (an ndarray inside) still resumes
    torch.save({"rng": {**rng_state(), "numpy": np.random.get_state()}}, tmp_path / "old.pt")
    b = (random.random(), np.random.rand())
    set_rng_state(load_checkpoint(tmp_path / "old.pt")["rng"])
    assert (random.random(), np.random.rand()) == b


def test_infer_runs_no_command_of_a_wav_scp_unless_allowed_and_then_each_once(packed, tmp_path):
    counter = tmp_path / "runs"
    src = packed["wav"] / "spkA-u0.wav"
    d = tmp_path / "list"
    d.mkdir()
    write_lines(d / "wav.scp", {"a": f"echo x >> {counter}; cat {src} |", "b": str(packed["wav"] / "spkB-u1.wav")})
    r = _infer(d / "wav.scp", "--model", packed["arc"], "--out-dir", tmp_path / "out")
    assert r.returncode == 1 and not counter.exists()
    assert f"{d / 'wav.scp'}:1: 'a' is a command" in r.stderr and "--allow-commands" in r.stderr
    r = _infer(d / "wav.scp", "--model", packed["arc"], "--out-dir", tmp_path / "out", "--allow-commands")
    assert r.returncode == 0, r.stderr
    assert counter.read_text() == "x\n"  # run once: its duration and its audio come from the same run
    rows = (tmp_path / "out/utt2emo").read_text().split("\n")
    assert [row.split()[0] for row in rows if row] == ["a", "b"]


# -- meta.json, which no checksum covers, is range-checked -------------------------------------------------
@pytest.mark.parametrize("edit, match", [
    ({"min_duration": 1e9}, "'min_duration' is 1000000000.0, but must be a finite number in"),
    ({"format_version": 0}, "format_version 0 is not a version"),
    ({"format_version": -7}, "format_version -7 is not a version"),
    ({"format_version": True}, "format_version True is not a version"),
    ({"task": "ser_fusion"}, "'weights' is None, but must be a non-empty list"),
    ({"knn": {"beta": float("nan"), "k": 3, "temperature": 1.0}}, "'beta' is nan"),
    ({"labels": ["neu", "ang"]}, r"the label lists disagree: config.yaml gives \['ang', 'neu'\], meta.json gives"),
])
def test_a_doctored_meta_json_is_refused(packed, tmp_path, edit, match):
    from speechser.pack.api import Speech2TextEmotion

    bad = _rewrite(packed["arc"], tmp_path / "bad.tar", lambda n, d: d, lambda m: m.update(edit))
    with pytest.raises(PackError, match=match):
        Speech2TextEmotion.from_packed(bad, device="cpu")


def test_a_relabelled_config_is_refused_though_its_checksum_was_recomputed(packed, tmp_path):
    from speechser.pack.packed_ser import PackedSER

    def swap(name: str, data: bytes) -> bytes:
        return data.replace(b"- ang\n  - neu", b"- neu\n  - ang") if name == "config.yaml" else data

    bad = _rewrite(packed["arc"], tmp_path / "bad.tar", swap)
    assert b"- neu\n  - ang" in tarfile.open(bad).extractfile("config.yaml").read()
    with pytest.raises(PackError, match="the label lists disagree"):
        PackedSER(bad, device="cpu")


@pytest.mark.parametrize("weights, match", [
    ([float("nan"), 1.0], "a non-empty list of finite weights"),
    ([-1.0, 2.0], "a non-empty list of finite weights >= 0"),
    ([0.5, 0.6], "weights that sum to 1"),
    ([1.0], "a list of 1 member"),
])
def test_fusion_weights_must_be_a_convex_combination(weights, match):
    from speechser.pack.meta import check_meta

    with pytest.raises(PackError, match=match):
        check_meta({"task": "ser_fusion", "weights": weights, "members": ["a", "b"][:2]}, "x.tar")
    check_meta({"task": "ser_fusion", "weights": [0.25, 0.75], "members": ["a", "b"]}, "x.tar")


# -- tiny inputs that claim gigabytes, or never end -----------------------------------------------------------
def test_a_member_claiming_more_than_the_archive_holds_and_compressed_archives_are_refused(tmp_path):
    arc = write_archive(tmp_path / "m.tar", {"model.pt": b"w" * 100}, {"task": "ser"})
    with tarfile.open(arc) as tar:
        infos = tar.getmembers()
    big = tmp_path / "big.tar"
    with open(big, "wb") as f:
        info = tarfile.TarInfo("model.pt")
        info.size = 4 << 30
        f.write(infos[0].tobuf() + b"\0" * (512 * ((infos[0].size + 511) // 512)))
        f.write(info.tobuf(tarfile.GNU_FORMAT) + b"w" * 20000)
    with pytest.raises(PackError, match=r"'model.pt' claims 4294967296 bytes, more than the \d+-byte archive"):
        read_archive(big, tmp_path / "x")
    gz = tmp_path / "m.tar.gz"
    with tarfile.open(gz, "w:gz") as tar:
        tar.add(arc, "m.tar")
    with pytest.raises(PackError, match="gzip-compressed file; speechser-pack writes uncompressed"):
        read_archive(gz, tmp_path / "y")


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_model_path_that_is_a_fifo_or_a_device_is_refused_at_once(tmp_path, kind):
    path = Path("/dev/zero")
    if kind == "fifo":
        path = tmp_path / "fifo"
        os.mkfifo(path)
    code = ("import sys\nfrom speechser.pack.archive import archive_task, PackError\n"
            "try:\n    archive_task(sys.argv[1])\nexcept PackError as e:\n    print(e)")
    r = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    assert f"{path}: a {'FIFO' if kind == 'fifo' else 'device'}, not a packed model" in r.stdout, r.stderr


def test_yaml_aliases_are_refused_in_configs(tmp_path):
    bomb = tmp_path / "train.yaml"
    rows = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    rows += [f"{c}: &{c} [{', '.join(['*' + p] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi")]
    bomb.write_text("model:\n  conf:\n    asr_model:\n" + "".join(f"      {r}\n" for r in rows))
    assert len(bomb.read_bytes()) < 700
    with pytest.raises(ConfigError, match=r"train.yaml:5:\d+: YAML alias '\*a': configs may not use"):
        read_yaml(bomb)


# -- no output replaces an input --------------------------------------------------------------------------
def test_infer_refuses_an_out_dir_that_is_the_data_directory_being_labelled(packed, tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    for name in ("wav.scp", "utt2spk", "utt2emo", "spk2utt"):
        (d / name).write_bytes((packed["data"] / name).read_bytes())
    before = (d / "utt2emo").read_bytes()
    r = _infer(d / "wav.scp", "--model", packed["arc"], "--out-dir", d)
    assert r.returncode == 1 and f"--out-dir {d} is the folder of the input {d / 'wav.scp'}" in r.stderr
    assert (d / "utt2emo").read_bytes() == before
    assert sorted(p.name for p in d.iterdir()) == ["spk2utt", "utt2emo", "utt2spk", "wav.scp"]


def test_pack_refuses_an_out_that_is_the_experiments_checkpoint_or_config(packed, tmp_path, run_main):
    exp = packed["exp"]
    for victim in (exp / "config.yaml", *sorted(exp.glob("*.pt"))[:1]):
        before = victim.read_bytes()
        r = run_main("pack", "--exp-dir", exp, "--out", victim, "--min-duration", "0.5", cwd=exp.parent)
        assert r.returncode == 1 and f"--out {victim}: exists and is not a packed model" in r.stderr, r.stderr
        assert victim.read_bytes() == before
    # an earlier archive is replaced as before
    again = tmp_path / "again.tar"
    again.write_bytes(packed["arc"].read_bytes())
    r = run_main("pack", "--exp-dir", exp, "--out", again, "--min-duration", "0.5", cwd=exp.parent)
    assert r.returncode == 0, r.stderr


def test_labelling_never_empties_a_folder_it_did_not_create(packed, tmp_path):
    from speechser.pack.packed_ser import PackedSER

    m = PackedSER(packed["arc"], device="cpu")
    d = packed["data"]
    before = sorted(p.name for p in d.iterdir())
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine/notes.txt").write_text("keep me")
    for work in (d, tmp_path / "mine"):
        with pytest.raises(PackError, match="exists and is not an empty folder"):
            m.label_data_dir(d, work)
    assert sorted(p.name for p in d.iterdir()) == before
    assert (tmp_path / "mine/notes.txt").read_text() == "keep me"
    done = m.label_data_dir(d, tmp_path / "new")
    assert len(done.outputs.keys) == 8
    m.close()


# -- inputs: links followed, all-skipped runs and bad text said in one line -----------------------------------
def test_symlinked_folders_are_followed_and_a_loop_is_listed(packed, tmp_path):
    from speechser.pack.inputs import collect_inputs

    top = tmp_path / "top"
    (top / "real").mkdir(parents=True)
    write_tone(top / "real/x.wav", 0.8)
    other = tmp_path / "other"
    other.mkdir()
    write_tone(other / "y.wav", 0.8)
    (top / "linked").symlink_to(other, target_is_directory=True)
    (top / "real/back").symlink_to(top, target_is_directory=True)
    found = collect_inputs([top])
    assert sorted(found.wav) == ["linked-y", "real-x"]
    assert [why for why in found.skipped.values()] == ["a link to a folder already searched (a loop): not searched again"]


def test_infer_where_every_input_is_skipped_writes_skipped_and_says_so_in_one_line(packed, tmp_path):
    short = tmp_path / "short.wav"
    write_tone(short, 0.3)
    r = _infer(short, "--model", packed["arc"], "--out-dir", tmp_path / "out")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"none of the 1 input(s) could be labelled; each is listed with its reason in {tmp_path / 'out/skipped'}" \
        in r.stderr
    assert (tmp_path / "out/skipped").read_text().startswith("short ")
    r = _infer(packed["wav"], "--model", packed["arc"], "--out-dir", tmp_path / "out2", "--max-seconds", "0.001")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "max_seconds 0.001 is shorter than the 0.5 s this model skips" in r.stderr


def test_a_latin1_list_file_is_named_with_its_line(tmp_path):
    from speechser.pack.inputs import collect_inputs

    lst = tmp_path / "list.txt"
    lst.write_bytes("# ok\nr\xe9union.wav\n".encode("latin-1"))
    with pytest.raises(DataDirError, match=rf"{lst}:2: not valid UTF-8 \(byte 0xE9"):
        collect_inputs([lst])


def test_archive_task_reads_only_a_leading_meta_json(tmp_path):
    arc = write_archive(tmp_path / "m.tar", {"model.pt": b"w"}, {"task": "ser"})
    assert archive_task(arc) == "ser"
    swapped = tmp_path / "swapped.tar"
    with tarfile.open(arc) as tin, tarfile.open(swapped, "w") as tout:
        for info in reversed(tin.getmembers()):
            tout.addfile(info, tin.extractfile(info))
    with pytest.raises(PackError, match="the first member is not a meta.json"):
        archive_task(swapped)
