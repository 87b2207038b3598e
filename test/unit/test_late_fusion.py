"""Late fusion (speechser.combine.late_fusion, speechser-fuse-ser): the weight grid, the choice on the validation
set only, the fused posteriors, and clear errors for members that cannot be fused."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from speechser.bin.fuse_ser import main as fuse_main
from speechser.config import ConfigError
from speechser.combine.ensemble import read_posteriors
from speechser.combine.late_fusion import LateFusionConfig, choose_weights, fuse_fold, load_fusion_config, weight_grid
from speechser.io.datadir import DataDirError
from speechser.metrics.decode_dir import write_ser_decode

LABELS = ["ang", "hap", "sad"]


def onehot_posts(hyps, sharp=0.8):
    """Posteriors ``(N, 3)`` putting ``sharp`` on each hypothesis and the rest evenly on the others."""
    p = np.full((len(hyps), 3), (1 - sharp) / 2)
    p[np.arange(len(hyps)), hyps] = sharp
    return p


def test_the_weight_grid_covers_the_simplex():
    np.testing.assert_allclose(weight_grid(2, 0.5), [[0, 1], [0.5, 0.5], [1, 0]])
    g = weight_grid(3, 0.1)
    assert g.shape == (66, 3) and np.allclose(g.sum(1), 1) and (g >= 0).all()
    assert len({tuple(r) for r in np.round(g, 9)}) == 66


#: On refs ang ang hap hap sad sad: member A is sure and right on ang/hap and unsure and wrong on sad
#: (UA 2/3); member B is sure and right on sad, unsure and wrong elsewhere (UA 1/3); together they are right.
VALID_A = np.array([[.9, .05, .05]] * 2 + [[.05, .9, .05]] * 2 + [[.5, .2, .3]] * 2)
VALID_B = np.array([[.3, .4, .3]] * 2 + [[.4, .3, .3]] * 2 + [[.05, .05, .9]] * 2)
VALID_REFS = [0, 0, 1, 1, 2, 2]


def test_the_chosen_weights_beat_each_member_on_valid():
    refs = np.array(VALID_REFS)
    w, score, table = choose_weights(np.stack([VALID_A, VALID_B]), refs, 0.05)
    assert score == pytest.approx(1.0)
    assert 0 < w[1] < 1 and w.sum() == pytest.approx(1)
    assert len(table) == 21 and max(r["ua"] for r in table) == pytest.approx(1.0)
    assert {tuple(r["weights"]): r["ua"] for r in table}[(1.0, 0.0)] == pytest.approx(2 / 3)


def make_member(root: Path, name: str, valid_posts, test_hyps, sharp, valid_refs, test_refs, labels=LABELS):
    d = root / name / "loso" / "fold1"
    valid_posts = np.asarray(valid_posts, dtype=float)
    if valid_posts.ndim == 1:
        valid_posts = onehot_posts(valid_posts.astype(int), sharp)
    write_ser_decode(d / "decode_valid", [f"v{i}" for i in range(len(valid_refs))], valid_posts,
                     valid_refs, labels)
    write_ser_decode(d / "decode_test", [f"t{i}" for i in range(len(test_refs))], onehot_posts(test_hyps, sharp),
                     test_refs, labels)
    return d


def test_a_fold_is_fused_with_weights_from_valid_and_never_from_test(tmp_path):
    vref, tref = VALID_REFS, [0, 1, 2, 2]
    a = make_member(tmp_path, "a", VALID_A, [0, 1, 0, 0], 0.9, vref, tref)
    b = make_member(tmp_path, "b", VALID_B, [2, 2, 2, 2], 0.6, vref, tref)
    conf = LateFusionConfig(members=["a", "b"])
    info = fuse_fold(conf, [a, b], tmp_path / "fused/loso/fold1")
    w = np.array(info["weights"])
    assert info["valid_ua"] == pytest.approx(1.0) and max(info["member_valid_ua"]) < 1.0
    labels, keys, post = read_posteriors(tmp_path / "fused/loso/fold1/decode_test/posteriors.tsv")
    _, _, pa = read_posteriors(a / "decode_test/posteriors.tsv")
    _, _, pb = read_posteriors(b / "decode_test/posteriors.tsv")
    np.testing.assert_allclose(post, w[0] * pa + w[1] * pb, atol=2e-6)
    assert (tmp_path / "fused/loso/fold1/decode_valid/hyp").is_file()
    # the test decodes change, the weights do not: only the valid set chooses them
    make_member(tmp_path, "b", VALID_B, [0, 1, 0, 1], 0.6, vref, tref)
    again = fuse_fold(conf, [a, b], tmp_path / "fused2")
    assert again["weights"] == info["weights"]
    # equal and fixed weights need no valid decodes
    for d in (a, b):
        for f in (d / "decode_valid").iterdir():
            f.unlink()
        (d / "decode_valid").rmdir()
    assert fuse_fold(LateFusionConfig(members=["a", "b"], weights="equal"), [a, b], tmp_path / "eq")["weights"] == [0.5, 0.5]
    fixed = LateFusionConfig(members=["a", "b"], weights="fixed", fixed_weights=[3, 1])
    assert fuse_fold(fixed, [a, b], tmp_path / "fx")["weights"] == [0.75, 0.25]
    with pytest.raises(DataDirError, match="decode_valid/posteriors.tsv: no such file.*--decode_valid true"):
        fuse_fold(conf, [a, b], tmp_path / "x")


def test_members_that_cannot_be_fused_are_errors_naming_them(tmp_path):
    vref, tref = [0, 1, 2], [0, 1]
    a = make_member(tmp_path, "a", [0, 1, 2], [0, 1], 0.9, vref, tref)
    b = make_member(tmp_path, "b", [0, 1, 2], [0, 1], 0.9, vref, tref, labels=["ang", "sad", "hap"])
    with pytest.raises(DataDirError, match="labels .* differ"):
        fuse_fold(LateFusionConfig(members=["a", "b"]), [a, b], tmp_path / "out")
    with pytest.raises(DataDirError, match="decode_test/posteriors.tsv: no such file .*train and decode member"):
        fuse_fold(LateFusionConfig(members=["a", "c"]), [a, tmp_path / "c/loso/fold1"], tmp_path / "out")
    for bad, match in (({"members": ["a"]}, "at least two"), ({"members": ["a", "a"]}, "listed twice"),
                       ({"members": ["a", "b"], "grid_step": 0.3}, "does not divide 1"),
                       ({"members": ["a", "b"], "weights": "fixed"}, "fixed_weights"),
                       ({"members": ["a", "b"], "weights": "best"}, "not one of"),
                       ({"members": ["a", "b"], "step": 0.1}, "step")):
        path = tmp_path / "fuse.yaml"
        path.write_text(yaml.safe_dump(bad))
        with pytest.raises(ConfigError, match=match):
            load_fusion_config(path)


def test_the_command_fuses_every_fold_and_dumps_its_config(tmp_path, capsys):
    make_member(tmp_path, "a", VALID_A, [0, 1, 0, 0], 0.9, VALID_REFS, [0, 1, 2, 2])
    make_member(tmp_path, "b", VALID_B, [2, 2, 2, 2], 0.6, VALID_REFS, [0, 1, 2, 2])
    conf = tmp_path / "fuse.yaml"
    conf.write_text("members: [a, b]\ngrid_step: 0.1\n")
    assert fuse_main(["--config", str(conf), "--exp-root", str(tmp_path), "--protocol", "loso",
                      "--out-tag", "ab", "--folds", "1"]) == 0
    assert (tmp_path / "ab/loso/fold1/decode_test/hyp").is_file()
    assert yaml.safe_load((tmp_path / "ab/loso/config.yaml").read_text())["grid_step"] == 0.1
    assert fuse_main(["--config", str(conf), "--exp-root", str(tmp_path), "--protocol", "loso",
                      "--out-tag", "ab", "--folds", "2"]) == 1
    assert "fold2/decode_test/posteriors.tsv: no such file" in capsys.readouterr().err
    assert fuse_main(["--config", str(conf), "--exp-root", str(tmp_path), "--protocol", "loso",
                      "--out-tag", "a", "--folds", "1"]) == 1


def test_stale_or_mixed_member_decodes_are_refused(tmp_path):
    """A member decoded again on one set only, or whose decode failed half-way, would mix two models."""
    import json

    a = make_member(tmp_path, "a", VALID_A, [0, 1, 0, 0], 0.9, VALID_REFS, [0, 1, 2, 2])
    b = make_member(tmp_path, "b", VALID_B, [2, 2, 2, 2], 0.6, VALID_REFS, [0, 1, 2, 2])
    conf = LateFusionConfig(members=["a", "b"])
    for name, ckpt in (("decode_valid", "old.pt"), ("decode_test", "new.pt")):
        scores = json.loads((b / name / "scores.json").read_text())
        (b / name / "scores.json").write_text(json.dumps({**scores, "checkpoint": ckpt}))
    with pytest.raises(DataDirError, match="decoded with old.pt.*with new.pt"):
        fuse_fold(conf, [a, b], tmp_path / "out")
    (b / "decode_valid/scores.json").write_text(json.dumps({"checkpoint": "new.pt"}))
    (b / "decode_test/hyp").unlink()  # stage 6 removes hyp first: a failed decode leaves none
    with pytest.raises(DataDirError, match="decode_test/hyp: no such file"):
        fuse_fold(conf, [a, b], tmp_path / "out")
    c = make_member(tmp_path, "c", VALID_B, [2, 2, 2, 2], 0.6, [0, 0, 1, 1, 2, 1], [0, 1, 2, 2])
    with pytest.raises(DataDirError, match="the references differ"):
        fuse_fold(conf, [a, c], tmp_path / "out")
