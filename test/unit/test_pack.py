"""Packed archives (checksums, versions, damage) and a user's audio as a data directory (issue 15)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import List, Tuple

import numpy as np
import pytest
import soundfile

from speechser.metrics.decode_dir import write_ser_decode
from speechser.pack.archive import META, PACK_VERSION, PackError, read_archive, write_archive
from speechser.features.front_end import FrontEnd, FrontEndError
from speechser.pack.inputs import collect_inputs, plan_segments, write_input_dir
from speechser.io.datadir import DataDirError, read_kv


def _archive(tmp_path: Path) -> Path:
    return write_archive(tmp_path / "m.tar", {"model.pt": b"weights" * 100, "labels.txt": b"a\nb\n"},
                         {"task": "ser"})


def _rewrite(src: Path, dst: Path, edit) -> Path:
    """Copy a tar member by member, ``edit(name, data) -> data or None (drop)``."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        for info in tin.getmembers():
            data = edit(info.name, tin.extractfile(info).read())
            if data is not None:
                info.size = len(data)
                tout.addfile(info, io.BytesIO(data))
    return dst


def test_archive_round_trip_records_versions_and_checksums(tmp_path):
    meta = read_archive(_archive(tmp_path), tmp_path / "x")
    assert meta["task"] == "ser" and meta["format_version"] == PACK_VERSION
    assert set(meta["files"]) == {"model.pt", "labels.txt"} and meta["torch_version"]
    assert (tmp_path / "x/model.pt").read_bytes() == b"weights" * 100


def test_damaged_member_is_named(tmp_path):
    bad = _rewrite(_archive(tmp_path), tmp_path / "bad.tar",
                   lambda n, d: d[:-1] + b"X" if n == "model.pt" else d)
    with pytest.raises(PackError, match="'model.pt' fails its sha256 check"):
        read_archive(bad, tmp_path / "x")


def test_missing_and_unlisted_members_and_foreign_archives(tmp_path):
    arc = _archive(tmp_path)
    gone = _rewrite(arc, tmp_path / "gone.tar", lambda n, d: None if n == "labels.txt" else d)
    with pytest.raises(PackError, match="'labels.txt' is listed .* but missing"):
        read_archive(gone, tmp_path / "x")
    nometa = _rewrite(arc, tmp_path / "nometa.tar", lambda n, d: None if n == META else d)
    with pytest.raises(PackError, match="no meta.json"):
        read_archive(nometa, tmp_path / "x")
    newer = _rewrite(arc, tmp_path / "newer.tar", lambda n, d: json.dumps(
        {**json.loads(d), "format_version": PACK_VERSION + 1}).encode() if n == META else d)
    with pytest.raises(PackError, match="format version 2.*upgrade speechser"):
        read_archive(newer, tmp_path / "x")
    with tarfile.open(arc, "a") as tar:  # a member meta.json does not list
        info = tarfile.TarInfo("extra.bin")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    with pytest.raises(PackError, match="'extra.bin' is not listed"):
        read_archive(arc, tmp_path / "x")
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all" * 64)
    with pytest.raises(PackError, match="not a readable tar archive"):
        read_archive(tmp_path / "junk.tar", tmp_path / "x")
    with tarfile.open(tmp_path / "escape.tar", "w") as tar:
        info = tarfile.TarInfo("../evil")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(PackError, match="not a plain top-level file"):
        read_archive(tmp_path / "escape.tar", tmp_path / "x")
    assert not (tmp_path / "evil").exists()


def test_front_end_descriptions_are_checked():
    fe = FrontEnd.from_json({"kind": "fbank", "options": {"num_mel_bins": 80}})
    assert fe.sample_rate == 16000
    with pytest.raises(FrontEndError, match="unknown front-end 'mfcc'"):
        FrontEnd("mfcc", {})
    with pytest.raises(FrontEndError, match="unknown option.*num_bins"):
        FrontEnd("fbank", {"num_bins": 80})


def _wav(path: Path, seconds: float, rate: int = 16000, channels: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    x = 0.1 * np.sin(2 * np.pi * 220 * t)
    soundfile.write(str(path), np.stack([x] * channels, 1) if channels > 1 else x, rate)
    return path


def test_inputs_from_folders_lists_and_wav_scp(tmp_path):
    _wav(tmp_path / "rec/spkA/a1.wav", 1.0)
    _wav(tmp_path / "rec/spkA/a2.wav", 1.0)
    _wav(tmp_path / "rec/spkB/sub dir/b1.flac", 1.0)
    (tmp_path / "rec/notes.txt").write_text("not audio\n")
    found = collect_inputs([tmp_path / "rec"])
    assert sorted(found.wav) == ["spkA-a1", "spkA-a2", "spkB-sub_dir-b1"]
    assert found.speaker["spkA-a1"] == found.speaker["spkA-a2"] != found.speaker["spkB-sub_dir-b1"]
    assert set(collect_inputs([tmp_path / "rec"], "one").speaker.values()) == {"all"}
    assert collect_inputs([tmp_path / "rec"], "each").speaker["spkA-a1"] == "spkA-a1"
    lst = tmp_path / "list.txt"
    lst.write_text("# my files\nrec/spkA/a1.wav\n\n" + str(tmp_path / "rec/spkA/a2.wav") + "\n")
    assert sorted(collect_inputs([lst]).wav) == ["a1", "a2"]
    scp_dir = tmp_path / "kaldi"
    scp_dir.mkdir()
    (scp_dir / "wav.scp").write_text(f"u1 {tmp_path / 'rec/spkA/a1.wav'}\nu2 {tmp_path / 'rec/spkA/a2.wav'}\n")
    (scp_dir / "utt2spk").write_text("u1 s1\nu2 s2\n")
    assert collect_inputs([scp_dir / "wav.scp"]).speaker == {"u1": "s1", "u2": "s2"}
    with pytest.raises(DataDirError, match="two inputs have the key 'a1'"):
        collect_inputs([lst, tmp_path / "rec/spkA/a1.wav"])
    with pytest.raises(DataDirError, match="no such file or folder"):
        collect_inputs([tmp_path / "nothing"])
    with pytest.raises(DataDirError, match="no audio files"):
        collect_inputs([scp_dir])


def test_long_recordings_are_cut_by_the_stated_rule_and_bad_files_skipped(tmp_path):
    assert plan_segments(10.0, 30.0) == [(0.0, 10.0)]
    pieces = plan_segments(65.0, 30.0)  # ceil(65 / 30) = 3 equal pieces
    assert len(pieces) == 3 and pieces[-1][1] == 65.0 and all(abs(e - s - 65 / 3) < 1e-9 for s, e in pieces)
    _wav(tmp_path / "in/long.wav", 7.0, rate=8000, channels=6)
    _wav(tmp_path / "in/short.wav", 1.0)
    (tmp_path / "in/empty.wav").write_bytes(b"")
    (tmp_path / "in/garbage.wav").write_bytes(b"RIFF0000WAVEjunk" * 10)
    found = collect_inputs([tmp_path / "in"])
    utt2reco = write_input_dir(found, tmp_path / "data", max_seconds=3.0)
    assert sorted(found.skipped) == ["empty", "garbage"]
    assert "empty (0 bytes)" in found.skipped["empty"] and "cannot read audio" in found.skipped["garbage"]
    segs = read_kv(tmp_path / "data/segments")
    assert sorted(segs) == ["long-0000000-0000233", "long-0000233-0000467", "long-0000467-0000700", "short"]
    assert segs["short"] == "short 0.000 1.000" and utt2reco["long-0000233-0000467"] == "long"
    assert set(read_kv(tmp_path / "data/wav.scp")) == {"long", "short"}


def test_an_unlabelled_set_gets_posteriors_and_hypotheses_but_no_scores(tmp_path):
    post = np.array([[0.9, 0.1], [0.2, 0.8]])
    assert write_ser_decode(tmp_path / "d", ["u1", "u2"], post, [-100, -100], ["a", "b"]) == {}
    assert (tmp_path / "d/hyp").read_text() == "u1 a\nu2 b\n" and not (tmp_path / "d/ref").exists()
    assert json.loads((tmp_path / "d/scores.json").read_text()) == {"n": 2, "labelled": False}
    with pytest.raises(ValueError, match="some utterances have a reference label and some have none"):
        write_ser_decode(tmp_path / "e", ["u1", "u2"], post, [0, -100], ["a", "b"])


def test_an_ssl_model_is_packed_with_its_pretrained_directory_and_labels_as_inference_did(
        make_feats_dir, tmp_path, train_seed):
    """A WavLM-based model (tiny, random weights, saved with save_pretrained) is packed with the files of its
    pretrained directory, loads after that directory is deleted, and labels the data directory's audio
    (formatted, featurized and normalized per speaker again) as speechser-infer-ser did."""
    import shutil

    import torch

    from conftest import save_tiny_wavlm
    from speechser.pack.packed_ser import PackedSER

    torch.manual_seed(train_seed)
    ssl_dir = save_tiny_wavlm(tmp_path / "wavlm")
    d = make_feats_dir(n_spk=2, n_utt=3, seconds=0.6)
    arc, names, member = _trained_and_packed(d, tmp_path, train_seed, "ssl.tar", "config.yaml", [
        "--data.load_audio", "true", "--model.name", "ssl_ser", "--model.conf.ssl.name_or_path", str(ssl_dir)])
    packed_conf = member.decode()
    assert "pretrained.0.config.json" in names and "packed:pretrained.0" in packed_conf
    assert str(ssl_dir) not in packed_conf
    shutil.rmtree(ssl_dir)
    packed = PackedSER(arc, device="cpu")
    # the test tones are written as 16-bit PCM, which the formatting step keeps sample for sample
    assert _labelled_as_decoded(packed, d, tmp_path) < 1e-5
    packed.close()


def _trained_and_packed(d: Path, tmp_path: Path, seed: int, out: str, member: str, options: List[str]
                        ) -> Tuple[Path, List[str], bytes]:
    """Train an SER model on ``d`` for one epoch (config ``options``), decode ``d`` into ``tmp_path/decode``
    and pack it into ``tmp_path/out``; returns the archive, its member names and the bytes of ``member``."""
    from speechser.pack.packed_ser import pack_ser
    from speechser.tasks.ser import infer_ser, load_ser_config, train_ser

    conf = load_ser_config(None, [
        "--data.train_dir", str(d), "--data.valid_dir", str(d), "--data.label_list", str(d / "emotions.txt"),
        *options, "--trainer.max_epochs", "1", "--seed", str(seed)])
    train_ser(conf, tmp_path / "exp")
    infer_ser(tmp_path / "exp", None, d, tmp_path / "decode")
    arc = pack_ser(tmp_path / "exp", tmp_path / out, min_duration=0.0)
    with tarfile.open(arc) as tar:
        return arc, tar.getnames(), tar.extractfile(member).read()


def _audio_only(d: Path, out: Path) -> Path:
    """A data directory ``out`` with the audio of ``d`` and no labels (its wav.scp, utt2spk, spk2utt only)."""
    out.mkdir()
    for name in ("wav.scp", "utt2spk", "spk2utt"):
        (out / name).write_bytes((d / name).read_bytes())
    return out


def _labelled_as_decoded(packed, d: Path, tmp_path: Path) -> float:
    """Label the audio of the data directory ``d`` (:func:`_audio_only`) with ``packed``; every utterance must
    be labelled, none skipped; returns the largest difference from the posteriors of the decode in
    ``tmp_path/decode``."""
    got = packed.label_data_dir(_audio_only(d, tmp_path / "in"), tmp_path / "work")
    want = {row.split("\t")[0]: [float(x) for x in row.split("\t")[1:]]
            for row in (tmp_path / "decode/posteriors.tsv").read_text().splitlines()[1:]}
    assert got.outputs.keys == sorted(want) and got.skipped == {}
    return float(np.abs(got.outputs.post.numpy() - np.array([want[k] for k in got.outputs.keys])).max())


def test_the_api_is_importable_from_the_package_root_without_loading_it_early():
    import subprocess
    import sys

    code = ("import sys, speechser; assert 'speechser.pack.api' not in sys.modules; "
            "from speechser import Speech2TextEmotion; print(Speech2TextEmotion.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "speechser.pack.api"


def test_an_archive_of_an_unknown_task_and_a_decoder_choice_on_valid(tmp_path):
    from speechser.pack.api import Speech2TextEmotion
    from speechser.pack.packed_asr import choose_decoder

    arc = write_archive(tmp_path / "x.tar", {"model.pt": b"w"}, {"task": "diarization"})
    with pytest.raises(PackError, match="task 'diarization' is not one"):
        Speech2TextEmotion.from_packed(arc)
    for dec, wer in (("ctc_greedy", 0.30), ("ctc_beam", 0.25), ("rnnt_greedy", 0.25)):
        (tmp_path / dec).mkdir()
        (tmp_path / dec / "scores.json").write_text(json.dumps({"decoder": dec, "wer": wer}))
    assert choose_decoder([tmp_path / d for d in ("ctc_greedy", "ctc_beam", "rnnt_greedy")]) == ("ctc_beam", 0.25)
    with pytest.raises(PackError, match="decode the valid set first"):
        choose_decoder([tmp_path / "rnnt_beam"])


def test_a_packed_model_with_its_knn_datastore_decodes_as_the_knn_stage_did(make_feats_dir, tmp_path, train_seed):
    from speechser.io.datadir import copy_data_dir
    from speechser.knn.decode_ser import knn_decode_ser, load_knn_config
    from speechser.pack.packed_ser import PackedSER, pack_ser
    from speechser.tasks.ser import load_ser_config, train_ser

    d = make_feats_dir()
    valid = tmp_path / "valid"
    copy_data_dir(d, valid, utt_prefix="v-")  # other keys, so the datastore holds train and valid apart
    for name in ("cmvn.scp", "emotions.txt"):
        (valid / name).write_bytes((d / name).read_bytes())
    conf = load_ser_config(None, [
        "--data.train_dir", str(d), "--data.valid_dir", str(valid), "--data.label_list", str(d / "emotions.txt"),
        "--data.max_frames", "300", "--model.conf.channels", "16", "--model.conf.embed_dim", "8",
        "--trainer.max_epochs", "2", "--seed", str(train_seed)])
    train_ser(conf, tmp_path / "exp")
    knn = load_knn_config(None, ["--betas", "[0.5]", "--ks", "[3]"])  # interpolation surely on
    knn_decode_ser(tmp_path / "exp", None, d, valid, [d], tmp_path / "knn", knn)
    arc = pack_ser(tmp_path / "exp", tmp_path / "m.tar", min_duration=0.0, knn_dir=tmp_path / "knn")
    packed = PackedSER(arc, device="cpu")
    assert packed.knn is not None and packed.knn["beta"] == 0.5 and len(packed.store) == 16
    got = packed.label_data_dir(_audio_only(d, tmp_path / "in"), tmp_path / "work").outputs
    rows = (tmp_path / "knn" / d.name / "posteriors.tsv").read_text().splitlines()[1:]
    want = {r.split("\t")[0]: [float(x) for x in r.split("\t")[1:]] for r in rows}
    assert np.abs(got.post.numpy() - np.array([want[k] for k in got.keys])).max() < 1e-5
    plain = pack_ser(tmp_path / "exp", tmp_path / "plain.tar", min_duration=0.0)
    model_only = PackedSER(plain, device="cpu").label_data_dir(tmp_path / "in", tmp_path / "work2").outputs
    assert np.abs(model_only.post.numpy() - got.post.numpy()).max() > 1e-3  # the datastore changed something


def test_an_early_fusion_model_is_packed_with_both_front_ends(make_feats_dir, tmp_path, train_seed, caplog):
    """tdnn_vector_ser (fbank frames + openSMILE functionals, each normalized per speaker) is packed with both
    front-ends and the training vectors' pooled statistics, and labels the audio as the recipe's decode did;
    a speaker with too few vectors is normalized with the pooled statistics (logged)."""
    import logging
    import shutil

    import torch

    from speechser.features.extract import write_cmvn
    from speechser.io.datadir import read_kv
    from speechser.pack.frontend import extract_features
    from speechser.pack.packed_ser import VECTOR_CMVN_FILE, VECTOR_FRONT_END_FILE, PackedSER

    torch.manual_seed(train_seed)
    d = make_feats_dir(n_spk=2, n_utt=10, seconds=0.6)
    vec = tmp_path / "vec"
    vec.mkdir()
    extract_features(FrontEnd("opensmile", {"feature_set": "eGeMAPSv02", "level": "functionals"}), d, vec / "raw")
    (vec / "feats.scp").write_text((vec / "raw.scp").read_text())
    for name in ("utt2spk", "spk2utt"):
        shutil.copy(d / name, vec / name)
    write_cmvn(vec, per_speaker=True)
    arc, names, member = _trained_and_packed(d, tmp_path, train_seed, "fusion.tar", VECTOR_FRONT_END_FILE, [
        "--data.vector_dir", str(vec), "--data.cmvn_type", "speaker", "--model.name", "tdnn_vector_ser",
        "--model.conf.channels", "16", "--model.conf.embed_dim", "8", "--model.conf.vector_hidden", "8"])
    front = json.loads(member)
    assert VECTOR_CMVN_FILE in names and front["kind"] == "opensmile"
    packed = PackedSER(arc, device="cpu")
    assert _labelled_as_decoded(packed, d, tmp_path) < 1e-4
    # one utterance of a new speaker: its one vector cannot be normalized by itself; the pooled statistics are
    one = tmp_path / "one"
    one.mkdir()
    key = sorted(read_kv(d / "wav.scp"))[0]
    (one / "wav.scp").write_text(f"solo {read_kv(d / 'wav.scp')[key]}\n")
    (one / "utt2spk").write_text("solo solo\n")
    (one / "spk2utt").write_text("solo solo\n")
    with caplog.at_level(logging.WARNING):
        alone = packed.label_data_dir(one, tmp_path / "work_one")
    assert alone.outputs.keys == ["solo"] and torch.isfinite(alone.outputs.post).all()
    assert "vectors: 1 speaker(s) with fewer than 10 files" in caplog.text  # one vector a file: files, not frames
    packed.close()


def test_packing_reads_the_experiment_alone(make_feats_dir, tmp_path, train_seed, monkeypatch):
    """Training records in the experiment what packing needs of its training data (``inference/``: the
    front-end, the pooled statistics of per-speaker CMVN): with the training set's features, statistics and
    settings deleted, and from another working directory, the experiment packs, and the archive labels the
    audio as decoding did before the deletion."""
    from speechser.pack.packed_ser import PackedSER, pack_ser
    from speechser.tasks.ser import infer_ser, load_ser_config, train_ser

    d = make_feats_dir(n_spk=2, n_utt=3, seconds=0.6)
    conf = load_ser_config(None, [
        "--data.train_dir", str(d), "--data.valid_dir", str(d), "--data.label_list", str(d / "emotions.txt"),
        "--data.cmvn_type", "speaker", "--trainer.max_epochs", "1", "--seed", str(train_seed)])
    train_ser(conf, tmp_path / "exp")
    infer_ser(tmp_path / "exp", None, d, tmp_path / "decode")
    assert sorted(p.name for p in (tmp_path / "exp/inference").iterdir()) == ["cmvn_pooled.ark", "frontend.json"]
    for p in d.iterdir():  # the training data's features and what was derived from them: gone
        if p.name not in ("wav.scp", "utt2spk", "spk2utt", "emotions.txt", "utt2emo"):
            p.unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    arc = pack_ser(tmp_path / "exp", tmp_path / "alone.tar", min_duration=0.0)
    packed = PackedSER(arc, device="cpu")
    assert _labelled_as_decoded(packed, d, tmp_path) < 1e-5
    packed.close()


def test_an_experiment_without_its_record_names_the_fix(make_feats_dir, tmp_path, train_seed, capsys):
    """An experiment trained before experiments recorded their inference inputs: packing says which file is
    missing and how to record it; ``--record-inputs`` records it from the training data and packs."""
    from speechser.bin.pack import main as pack_main
    from speechser.tasks.ser import load_ser_config, train_ser

    d = make_feats_dir(n_spk=2, n_utt=3, seconds=0.6)
    train_ser(load_ser_config(None, [
        "--data.train_dir", str(d), "--data.valid_dir", str(d), "--data.label_list", str(d / "emotions.txt"),
        "--trainer.max_epochs", "1", "--seed", str(train_seed)]), tmp_path / "exp")
    recorded = (tmp_path / "exp/inference/frontend.json").read_text()
    (tmp_path / "exp/inference/frontend.json").unlink()
    args = ["--exp-dir", str(tmp_path / "exp"), "--out", str(tmp_path / "m.tar"), "--min-duration", "0"]
    assert pack_main(args) == 1
    err = capsys.readouterr().err
    assert "inference/frontend.json: no such file" in err and "--record-inputs" in err
    assert not (tmp_path / "m.tar").exists()
    assert pack_main([*args, "--record-inputs"]) == 0
    assert (tmp_path / "exp/inference/frontend.json").read_text() == recorded and (tmp_path / "m.tar").is_file()


def test_the_python_call_names_what_it_was_given_and_warns_on_silence(make_feats_dir, tmp_path, train_seed, caplog):
    """Too-short audio given to the Python call is named as given (not by a temporary file), with its length
    and the model's minimum; silent audio is labelled, with a warning that the label means little."""
    import logging

    import pytest

    from speechser import Speech2TextEmotion
    from speechser.pack.packed_ser import pack_ser
    from speechser.tasks.ser import load_ser_config, train_ser

    d = make_feats_dir(n_spk=2, n_utt=3, seconds=0.6)
    train_ser(load_ser_config(None, [
        "--data.train_dir", str(d), "--data.valid_dir", str(d), "--data.label_list", str(d / "emotions.txt"),
        "--trainer.max_epochs", "1", "--seed", str(train_seed)]), tmp_path / "exp")
    m = Speech2TextEmotion.from_packed(pack_ser(tmp_path / "exp", tmp_path / "m.tar", min_duration=0.5))
    with pytest.raises(ValueError) as err:
        m(np.zeros(3200, dtype=np.float32) + 0.1, rate=16000)
    msg = str(err.value)
    assert msg.startswith("the samples given: not labelled: 0.200 s, shorter than the minimum duration 0.5 s")
    assert "speechser-call-" not in msg and "input" not in msg.split(":")[0]
    with caplog.at_level(logging.WARNING):
        r = m(np.zeros(16000, dtype=np.float32), rate=16000)  # one second of digital silence
    assert r.emotion in m.labels
    assert any("silent or nearly (peak digital silence" in rec.getMessage() for rec in caplog.records)
