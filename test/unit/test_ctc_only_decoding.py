"""A CTC-only model (rnnt_weight 0) decodes with the decoders its branches allow: the stage script reads
them from the model, and asking for an RNN-T decoder is an error naming the missing branch (it was an
AttributeError deep in the search)."""

from __future__ import annotations

from pathlib import Path

import pytest

from speechser.config import ConfigError


def _ctc_only_exp(make_feats_dir, tmp_path: Path, seed: int) -> tuple:
    from conftest import train_tiny_asr

    d = make_feats_dir()
    return d, train_tiny_asr(d, tmp_path, seed, "--model.conf.rnnt_weight", "0")


def test_the_decoders_follow_the_model_branches():
    from types import SimpleNamespace

    from speechser.tasks.asr import DECODERS, model_decoders

    assert model_decoders(SimpleNamespace(conf={"rnnt_weight": 0.0})) == ["ctc_greedy", "ctc_beam"]
    assert model_decoders(SimpleNamespace(conf={"rnnt_weight": 1.0})) == ["rnnt_greedy", "rnnt_beam"]
    assert model_decoders(SimpleNamespace(conf={"rnnt_weight": 0.3})) == list(DECODERS)
    assert model_decoders(SimpleNamespace(conf={})) == list(DECODERS)  # the default weight, 0.5: both


def test_a_ctc_only_experiment_lists_its_decoders_and_refuses_rnnt_by_name(make_feats_dir, tmp_path, train_seed,
                                                                          capsys):
    from speechser.bin.decode_asr import main
    from speechser.tasks.asr import decode_asr

    d, exp = _ctc_only_exp(make_feats_dir, tmp_path, train_seed)
    assert main(["--exp-dir", str(exp), "--list-decoders"]) == 0
    assert capsys.readouterr().out.split() == ["ctc_greedy", "ctc_beam"]
    ckpt = next(exp.glob("valid.acc.ave_1best.pt"))
    scores = decode_asr(exp, ckpt, d, tmp_path / "dec", "ctc_greedy")
    assert 0.0 <= scores["wer"]
    with pytest.raises(ConfigError, match="no RNN-T branch .*rnnt_weight 0.0.*ctc_greedy ctc_beam"):
        decode_asr(exp, ckpt, d, tmp_path / "dec2", "rnnt_greedy")
    assert not (tmp_path / "dec2").exists()
    assert main(["--exp-dir", str(exp), "--checkpoint", str(ckpt), "--data-dir", str(d), "--out-dir",
                 str(tmp_path / "dec3"), "--decoder", "rnnt_beam"]) == 1
    assert "no RNN-T branch" in capsys.readouterr().err
