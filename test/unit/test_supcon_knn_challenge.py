import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from speechser.config import ConfigError
from speechser.knn.datastore import KNNDatastore, interpolate, knn_distribution, tune_knn
from speechser.losses.contrastive import hybrid_ce_supcon, supervised_contrastive
from speechser.metrics.challenge import balanced_two_class_accuracy, final_score, map_labels, read_label_map


def supcon_by_loops(z: torch.Tensor, y: torch.Tensor, t: float) -> float:
    """The textbook definition of L_out (Khosla et al., 2020, eq. 2), anchor by anchor."""
    z = F.normalize(z, dim=-1)
    losses = []
    for i in range(len(y)):
        others = [a for a in range(len(y)) if a != i]
        pos = [p for p in others if y[p] == y[i]]
        if not pos:
            continue
        denom = sum(math.exp(float(z[i] @ z[a]) / t) for a in others)
        losses.append(-sum(math.log(math.exp(float(z[i] @ z[p]) / t) / denom) for p in pos) / len(pos))
    return sum(losses) / len(losses)


def test_supcon_matches_definition_with_singleton_class():
    torch.manual_seed(0)
    z = torch.randn(7, 5)
    y = torch.tensor([0, 0, 1, 1, 1, 2, 0])  # class 2 has a single member: no positive for it
    got = float(supervised_contrastive(z, y, 0.3, variant="out"))  # L_in: test_supcon_variants.py
    assert got == pytest.approx(supcon_by_loops(z, y, 0.3), rel=1e-5)


def test_supcon_no_positive_pair_is_zero_with_gradient():
    z = torch.randn(3, 4, requires_grad=True)
    loss = supervised_contrastive(z, torch.tensor([0, 1, 2]))
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert z.grad is not None


def test_supcon_lower_when_classes_cluster():
    y = torch.tensor([0, 0, 1, 1])
    clustered = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    mixed = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [0.1, 0.9]])
    assert supervised_contrastive(clustered, y, 0.1) < supervised_contrastive(mixed, y, 0.1)


def test_hybrid_loss_weights():
    torch.manual_seed(1)
    logits, emb, y = torch.randn(6, 3), torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    ce = F.cross_entropy(logits, y)
    sc = supervised_contrastive(emb, y, 0.1)
    assert float(hybrid_ce_supcon(logits, emb, y, alpha=0.0)) == pytest.approx(float(ce))
    assert float(hybrid_ce_supcon(logits, emb, y, alpha=1.0)) == pytest.approx(float(sc))
    assert float(hybrid_ce_supcon(logits, emb, y, alpha=0.5)) == pytest.approx(0.5 * float(ce) + 0.5 * float(sc))
    with pytest.raises(ValueError):
        hybrid_ce_supcon(logits, emb, y, alpha=1.5)


def test_challenge_scores(tmp_path: Path):
    refs = ["neutral"] * 4 + ["negative"] * 2
    hyps = ["neutral", "neutral", "neutral", "negative", "negative", "neutral"]
    acc = balanced_two_class_accuracy(refs, hyps)
    assert acc == pytest.approx((3 / 4 + 1 / 2) / 2)
    assert final_score(0.1, acc) == pytest.approx(0.7 * 0.9 + 0.3 * acc)
    with pytest.raises(ValueError, match="negative"):
        balanced_two_class_accuracy(["neutral"], ["neutral"])
    m = tmp_path / "map.yaml"
    m.write_text("neu: neutral\nang: negative\nsad: negative\n")
    table = read_label_map(m)
    assert map_labels({"u1": "ang", "u2": "neu"}, table) == {"u1": "negative", "u2": "neutral"}
    with pytest.raises(ConfigError, match="'hap'"):
        map_labels({"u3": "hap"}, table)
    bad = tmp_path / "bad.yaml"
    bad.write_text("neu: calm\n")
    with pytest.raises(ConfigError, match="calm"):
        read_label_map(bad)


def test_knn_distribution_and_interpolation():
    sims = torch.tensor([[0.9, 0.8, 0.1]])
    labs = torch.tensor([[1, 1, 0]])
    p = knn_distribution(sims, labs, 3, temperature=0.1)
    w = torch.softmax(sims / 0.1, dim=1)[0]
    assert torch.allclose(p, torch.tensor([[float(w[2]), float(w[0] + w[1]), 0.0]]))
    pm = torch.tensor([[0.2, 0.3, 0.5]])
    assert torch.allclose(interpolate(pm, p, 1.0), pm)
    assert torch.allclose(interpolate(pm, p, 0.0), p)


def test_knn_exact_search_torch_equals_faiss_and_brute_force():
    pytest.importorskip("faiss")
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(500, 16, generator=g)
    labels = torch.randint(0, 4, (500,), generator=g).tolist()
    q = torch.randn(40, 16, generator=g)
    a = KNNDatastore(emb, labels, 4, backend="torch", chunk=7)
    b = KNNDatastore(emb, labels, 4, backend="faiss")
    sa, ia = a.search(q, 10)
    sb, ib = b.search(q, 10)
    assert torch.equal(ia, ib)
    assert torch.allclose(sa, sb, atol=1e-5)
    brute = (F.normalize(q, dim=-1) @ F.normalize(emb, dim=-1).t()).topk(10).indices
    assert torch.equal(ia, brute)
    # leave-one-out: a query that is in the datastore never retrieves itself
    s_ex, i_ex = a.search(emb[:5], 3, exclude=[0, 1, 2, 3, 4])
    assert all(int(i_ex[r].eq(r).sum()) == 0 for r in range(5)) and i_ex.shape == (5, 3)
    _, i_ex_f = b.search(emb[:5], 3, exclude=[0, 1, 2, 3, 4])
    assert torch.equal(i_ex, i_ex_f)


def test_tune_knn_prefers_model_without_evidence_and_knn_when_it_helps():
    # Two clusters; the "model" posteriors are wrong on the second cluster, the neighbours right.
    g = torch.Generator().manual_seed(0)
    centers = torch.tensor([[5.0, 0.0], [0.0, 5.0]])
    y = torch.tensor([0] * 20 + [1] * 20)
    emb = centers[y] + 0.3 * torch.randn(40, 2, generator=g)
    store = KNNDatastore(emb, y.tolist(), 2)
    post_bad = torch.tensor([[0.9, 0.1]] * 40)
    acc = lambda r, h: float(np.mean(np.asarray(r) == np.asarray(h)))  # noqa: E731
    best, grid = tune_knn(store, emb, post_bad, y.tolist(), acc, exclude=list(range(40)))
    assert best.score == 1.0 and best.beta <= 0.5 and len(grid) == 11 * 4 * 5
    post_good = F.one_hot(y, 2).float()
    best2, _ = tune_knn(store, emb, post_good, y.tolist(), acc, exclude=list(range(40)))
    assert best2.beta == 1.0


def test_knn_decode_ser_end_to_end(make_feats_dir, tmp_path: Path, train_seed):
    from speechser.knn.decode_ser import knn_decode_ser
    from speechser.tasks.ser import load_ser_config, train_ser

    d = make_feats_dir()
    conf = load_ser_config(None, [
        "--data.train_dir", str(d), "--data.valid_dir", str(d), "--data.label_list", str(d / "emotions.txt"),
        "--data.max_frames", "300", "--model.conf.channels", "16", "--model.conf.embed_dim", "8",
        "--trainer.max_epochs", "2", "--trainer.keep_nbest", "1", "--trainer.average_nbest", "1",
        "--seed", str(train_seed)])
    exp = tmp_path / "exp"
    train_ser(conf, exp)
    out = knn_decode_ser(exp, exp / "valid.ua.ave_1best.pt", d, d, [d], tmp_path / "knn")
    params = json.loads((tmp_path / "knn" / "knn_params.json").read_text())
    assert params["k"] == out["k"] and 0.0 <= params["beta"] <= 1.0
    assert params["datastore_size"] == 16
    import kaldiio

    store = kaldiio.load_scp(str(tmp_path / "knn/datastore/embeddings.scp"))
    assert len(store) == 8  # train and valid are the same directory here: one entry per key
    assert all(abs(float(np.linalg.norm(store[k])) - 1) < 1e-5 for k in store)
    assert len((tmp_path / "knn" / "knn_grid.tsv").read_text().splitlines()) == 1 + 11 * 4 * 5
    rows = (tmp_path / "knn" / d.name / "posteriors.tsv").read_text().splitlines()
    assert len(rows) == 9 and all(abs(sum(map(float, r.split("\t")[1:])) - 1) < 1e-4 for r in rows[1:])
    # each test utterance's nearest neighbours, best first: the test set is in the datastore here, so the
    # utterance itself is a neighbour at similarity 1, and every neighbour's audio is listed
    nb = [r.split("\t") for r in (tmp_path / "knn" / d.name / "neighbours.tsv").read_text().splitlines()[1:]]
    keys = sorted(store)
    assert len(nb) == 8 * 5 and sorted({r[0] for r in nb}) == keys
    utt2emo = dict(ln.split() for ln in (d / "utt2emo").read_text().splitlines())
    for key in keys:
        mine = [r for r in nb if r[0] == key]
        # the utterance itself is among the neighbours at similarity 1 (another utterance whose embedding is
        # equal may tie with it for the first rank)
        assert [int(r[1]) for r in mine] == [1, 2, 3, 4, 5] and float(mine[0][4]) > 0.999
        assert key in [r[2] for r in mine if float(r[4]) > 0.999]
        assert [float(r[4]) for r in mine] == sorted((float(r[4]) for r in mine), reverse=True)
        assert all(utt2emo[r[2]] == r[3] for r in mine)
    audio = [r.split("\t") for r in (tmp_path / "knn" / d.name / "audio.tsv").read_text().splitlines()[1:]]
    wavs = dict(ln.split(maxsplit=1) for ln in (d / "wav.scp").read_text().splitlines())
    assert [r[0] for r in audio] == keys and all(Path(r[1]) == Path(wavs[r[0]]).resolve() for r in audio)
    # The grid is configuration: a YAML, with a command-line override, searched point by point.
    from speechser.knn.decode_ser import load_knn_config

    (tmp_path / "knn.yaml").write_text("betas: [0.0, 0.5, 1.0]\nks: [2, 4]\ntemperatures: [0.1]\n")
    knn = load_knn_config(tmp_path / "knn.yaml", ["--ks", "[3]"])
    small = knn_decode_ser(exp, None, d, d, [d], tmp_path / "knn_small", knn)  # default: the averaged model
    grid = (tmp_path / "knn_small" / "knn_grid.tsv").read_text().splitlines()[1:]
    assert sorted((r.split("\t")[0], r.split("\t")[1], r.split("\t")[2]) for r in grid) == [
        ("0.00", "3", "0.1"), ("0.50", "3", "0.1"), ("1.00", "3", "0.1")]
    assert small["k"] == 3 and small["beta"] in (0.0, 0.5, 1.0)


def test_knn_config_rejects_an_empty_grid_and_out_of_range_values(tmp_path: Path):
    from speechser.config import ConfigError
    from speechser.knn.decode_ser import load_knn_config

    assert load_knn_config().ks == [4, 8, 16, 32]  # the built-in grid
    for args, key in ((["--ks", "[]"], "ks"), (["--betas", "[0.5, 1.5]"], "betas"),
                      (["--temperatures", "[0]"], "temperatures"), (["--backend", "annoy"], "backend"),
                      (["--k", "[4]"], "k")):
        with pytest.raises(ConfigError, match=key):
            load_knn_config(None, args)


def _write_decode(d: Path, rows, refs):
    from speechser.metrics.decode_dir import write_ser_decode

    keys = [f"u{i}" for i in range(len(rows))]
    write_ser_decode(d, keys, np.asarray(rows), refs, ["a", "b", "c"])


def test_vote_ensemble_majority_and_tie_break(tmp_path: Path):
    from speechser.combine.ensemble import ensemble_decodes
    from speechser.io.datadir import DataDirError

    refs = [0, 1]
    _write_decode(tmp_path / "m1", [[0.6, 0.3, 0.1], [0.5, 0.4, 0.1]], refs)
    _write_decode(tmp_path / "m2", [[0.1, 0.8, 0.1], [0.1, 0.2, 0.7]], refs)
    _write_decode(tmp_path / "m3", [[0.7, 0.2, 0.1], [0.2, 0.3, 0.5]], refs)
    ensemble_decodes([tmp_path / m for m in ("m1", "m2", "m3")], tmp_path / "vote")
    # u0: votes a, b, a -> a; u1: votes a, c, c -> c
    assert (tmp_path / "vote" / "hyp").read_text() == "u0 a\nu1 c\n"
    # a 1-1 tie between a and b on u0 goes to the higher mean posterior (b: (0.3 + 0.8) / 2 > a: 0.35)
    ensemble_decodes([tmp_path / "m1", tmp_path / "m2"], tmp_path / "tie")
    assert (tmp_path / "tie" / "hyp").read_text().splitlines()[0] == "u0 b"
    _write_decode(tmp_path / "short", [[0.6, 0.3, 0.1]], [0])
    with pytest.raises(DataDirError, match="utterances differ"):
        ensemble_decodes([tmp_path / "m1", tmp_path / "short"], tmp_path / "bad")


def test_posterior_averaging_ensemble_takes_the_argmax_of_the_mean_posterior(tmp_path: Path):
    """SAILER's ensembles (paper 004) average the members' posteriors; the vote can differ from it."""
    from speechser.combine.ensemble import ensemble_decodes, read_posteriors

    refs = [1]
    _write_decode(tmp_path / "m1", [[0.40, 0.35, 0.25]], refs)
    _write_decode(tmp_path / "m2", [[0.40, 0.35, 0.25]], refs)
    _write_decode(tmp_path / "m3", [[0.02, 0.96, 0.02]], refs)
    members = [tmp_path / m for m in ("m1", "m2", "m3")]
    ensemble_decodes(members, tmp_path / "vote")
    ensemble_decodes(members, tmp_path / "mean", method="mean")
    assert (tmp_path / "vote" / "hyp").read_text() == "u0 a\n"  # two votes for a
    assert (tmp_path / "mean" / "hyp").read_text() == "u0 b\n"  # mean: a 0.273, b 0.553
    _, _, post = read_posteriors(tmp_path / "mean" / "posteriors.tsv")
    assert np.allclose(post, [[0.82 / 3, 1.66 / 3, 0.52 / 3]], atol=1e-4)
