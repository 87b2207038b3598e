"""data.skip_file: utterances a data directory lists (the MSP-Podcast recipe's ``no_consensus``, its Train
utterances of consensus O/X) are left out of a training set, logged; validation and test sets keep them;
the list travels with the data tools (subset, copy, fix) cut to each copy's utterances."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest

from speechser.config import read_yaml
from speechser.data.ser_dataset import FeatsLabelDataset, collate_feats_labels
from speechser.data.soft_labels import SoftLabelConfig, distribution
from speechser.io.datadir import DataDirError, copy_data_dir, fix_data_dir, read_kv, subset_data_dir

ROOT = Path(__file__).resolve().parents[2]
LABELS = ["ang", "neu"]
SKIPPED = ["spkA-u1", "spkB-u2"]


def with_lists(d: Path) -> Path:
    """Soft labels (votes that differ per utterance), gender and a no_consensus list (plus an id the set
    lacks, which is ignored) beside make_feats_dir's files."""
    emo = read_kv(d / "utt2emo")
    (d / "utt2emo_dist").write_text("".join(f"{k} {v}:{3 + i} {'neu' if v == 'ang' else 'ang'}:1\n"
                                            for i, (k, v) in enumerate(emo.items())))
    (d / "utt2gender").write_text("".join(f"{k} {'f' if k.startswith('spkA') else 'm'}\n" for k in emo))
    (d / "no_consensus").write_text("".join(f"{u}\n" for u in [*SKIPPED, "spkZ-u9"]))
    return d


def test_a_training_set_leaves_the_listed_utterances_out_aligned_and_logged(make_feats_dir, caplog):
    d = with_lists(make_feats_dir(n_spk=2, n_utt=4, seconds=0.6))
    all_keys = list(read_kv(d / "feats.scp"))
    kept = [k for k in all_keys if k not in SKIPPED]
    frames, emo, votes = read_kv(d / "utt2num_frames"), read_kv(d / "utt2emo"), read_kv(d / "utt2emo_dist")
    caplog.set_level(logging.INFO)
    ds = FeatsLabelDataset(d, LABELS, soft_labels=SoftLabelConfig(file="utt2emo_dist"), train=True,
                           aux_labels={"utt2gender": ["f", "m"]}, skip_file="no_consensus")
    assert ds.keys == kept and len(ds) == 6 and ds.skipped == set(SKIPPED)
    assert ds.lengths == [int(frames[k]) for k in kept]
    # every per-utterance table holds exactly the kept utterances (class weights count utt2label's values)
    assert set(ds.utt2label) == set(kept) and set(ds.votes) == set(kept) and set(ds.aux["utt2gender"]) == set(kept)
    for i, key in enumerate(kept):
        item = ds[i]
        assert item["key"] == key and item["feats"].shape[0] == ds.lengths[i]
        assert item["label"] == LABELS.index(emo[key])
        first, second = votes[key].split()
        expect = np.zeros(2)
        for part in (first, second):
            c, n = part.split(":")
            expect[LABELS.index(c)] = float(n)
        assert np.allclose(item["soft"], distribution(expect))
        assert item["aux"]["utt2gender"] == (0 if key.startswith("spkA") else 1)
    batch = collate_feats_labels([ds[i] for i in range(len(ds))])
    assert batch.keys == kept
    msg = f"{d}: 2 utterance(s) of {d / 'no_consensus'} left out (data.skip_file)"
    assert msg in caplog.messages


def test_mixing_partners_come_from_the_kept_utterances(make_feats_dir):
    d = with_lists(make_feats_dir(n_spk=2, n_utt=4, seconds=0.6))
    conf = SoftLabelConfig(file="utt2emo_dist", majority=["ang"], mix_prob=1.0, mix_max_seconds=0.2)
    ds = FeatsLabelDataset(d, LABELS, soft_labels=conf, train=True, load_audio=True, seed=1, skip_file="no_consensus")
    assert ds.keys == [k for k in read_kv(d / "feats.scp") if k not in SKIPPED]
    for i, key in enumerate(ds.keys):
        draw = ds.mixer.draw(i, key)
        if draw is not None:
            assert 0 <= draw.partner < len(ds.keys) and ds.utt2label[ds.keys[draw.partner]] == 1
    assert len(ds.epoch_lengths(0)) == len(ds.keys)
    batch = collate_feats_labels([ds[i] for i in range(len(ds))])
    assert batch.keys == ds.keys and batch.soft.shape == (6, 2)


def test_validation_and_test_sets_keep_the_listed_utterances(make_feats_dir):
    d = with_lists(make_feats_dir(n_spk=2, n_utt=4, seconds=0.6))
    all_keys = list(read_kv(d / "feats.scp"))
    ds = FeatsLabelDataset(d, LABELS, skip_file="no_consensus")  # train=False: not filtered
    assert ds.keys == all_keys and not ds.skipped and len(ds.lengths) == 8
    assert FeatsLabelDataset(d, LABELS, skip_file="no_such_list").keys == all_keys  # not read at all


def test_the_config_key_reaches_the_training_set_only(make_feats_dir):
    from speechser.tasks.ser import SERDataConfig, _dataset

    d = with_lists(make_feats_dir(n_spk=2, n_utt=4, seconds=0.6))
    conf = SERDataConfig(skip_file="no_consensus", cmvn_type="speaker")
    assert _dataset(conf, str(d), LABELS, train=True).keys == [k for k in read_kv(d / "feats.scp") if k not in SKIPPED]
    assert len(_dataset(conf, str(d), LABELS, train=False)) == 8
    assert SERDataConfig().skip_file == ""  # by default nothing is skipped


def test_a_missing_skip_file_in_a_training_set_is_an_error_naming_it(make_feats_dir):
    d = make_feats_dir(n_spk=2, n_utt=2, seconds=0.6)
    with pytest.raises(DataDirError, match=re.escape(f"{d / 'no_consensus'}: no such file (data.skip_file")):
        FeatsLabelDataset(d, LABELS, train=True, skip_file="no_consensus")
    (d / "no_consensus").write_text("".join(f"{k}\n" for k in read_kv(d / "utt2spk")))
    with pytest.raises(DataDirError, match="lists every utterance"):
        FeatsLabelDataset(d, LABELS, train=True, skip_file="no_consensus")
    (d / "no_consensus").write_text("")  # an empty list: nothing left out
    assert len(FeatsLabelDataset(d, LABELS, train=True, skip_file="no_consensus")) == 4


def test_no_consensus_travels_with_subset_copy_and_fix_cut_to_their_utterances(make_data_dir, tmp_path):
    d = make_data_dir(n_spk=2, n_utt=3)
    (d / "no_consensus").write_text("spkA-u1\nspkB-u2\n")
    assert subset_data_dir(d, tmp_path / "a", spk_list=["spkA"]) == 3
    assert (tmp_path / "a/no_consensus").read_text() == "spkA-u1\n"
    subset_data_dir(d, tmp_path / "none", utt_list=["spkA-u0", "spkB-u1"])
    assert (tmp_path / "none/no_consensus").read_text() == ""  # present, empty: a skip_file still finds it
    copy_data_dir(d, tmp_path / "sp", utt_prefix="sp1.1-", spk_prefix="sp1.1-")
    assert (tmp_path / "sp/no_consensus").read_text() == "sp1.1-spkA-u1\nsp1.1-spkB-u2\n"
    # a destination's stale list (its source has none) is removed, as a stale utt2* file is
    (d / "no_consensus").unlink()
    subset_data_dir(d, tmp_path / "a", spk_list=["spkA"])
    assert not (tmp_path / "a/no_consensus").exists()
    # fix_data_dir cuts it to the utterances it keeps
    (d / "no_consensus").write_text("spkA-u1\nspkB-u2\n")
    utt2emo = read_kv(d / "utt2emo")
    del utt2emo["spkB-u2"]
    (d / "utt2emo").write_text("".join(f"{k} {v}\n" for k, v in utt2emo.items()))
    fix_data_dir(d)
    assert (d / "no_consensus").read_text() == "spkA-u1\n"


@pytest.mark.parametrize("config, skip", [("train_ssl.yaml", "no_consensus"),
                                          ("train_whisper_probe.yaml", "no_consensus"),
                                          ("train_sailer.yaml", ""), ("train_sailer_wavlm.yaml", "")])
def test_msp_podcast_configs_skip_no_consensus_only_for_the_categorical_systems(config, skip):
    """The challenge's categorical baseline (and the probe) leave Train's O/X out; SAILER trains on them."""
    c = read_yaml(ROOT / "egs/msp_podcast/ser1/conf" / config)
    assert (c.get("data") or {}).get("skip_file", "") == skip
