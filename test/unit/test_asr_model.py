import math

import pytest
import torch

from speechser.data.asr_dataset import FeatsTextDataset, collate_asr
from speechser.decode.ctc import ctc_greedy_search
from speechser.models.registry import build_model
from speechser.text.tokenizer import GraphemeTokenizer


def test_ctc_greedy_collapses_and_scores():
    # vocab: 0 blank, 1 a, 2 b; path a a _ b b _ a (+ 2 padded frames)
    path = [1, 1, 0, 2, 2, 0, 1, 2, 2]
    probs = torch.full((1, 9, 3), 0.1)
    peak = [0.8, 0.6, 0.8, 0.7, 0.9, 0.8, 0.5, 0.8, 0.8]
    for t, (k, p) in enumerate(zip(path, peak)):
        probs[0, t, k] = p
    hyp = ctc_greedy_search(probs.log(), torch.tensor([7]))[0]
    assert hyp.tokens == [1, 2, 1]
    assert hyp.confidence == pytest.approx((0.8 + 0.9 + 0.5) / 3)
    empty = torch.full((1, 4, 3), 0.1)
    empty[0, :, 0] = 0.8
    assert ctc_greedy_search(empty.log(), torch.tensor([4]))[0].confidence == 0.0


def small_asr(rnnt_weight: float, vocab: int):
    conf = {"encoder": {"d_model": 32, "num_layers": 2, "num_heads": 4, "ffn_dim": 64, "conv_kernel": 7,
                        "dropout": 0.0, "attention_dropout": 0.0},
            "pred_embed_dim": 16, "pred_hidden": 32, "joint_dim": 32, "rnnt_weight": rnnt_weight,
            "use_specaug": False, "dropout": 0.0}
    return build_model("conformer_transducer", conf, input_dim=40, vocab_size=vocab)


@pytest.mark.parametrize("rnnt_weight", [0.0, 0.5, 1.0])
def test_loss_finite_and_decreasing_on_a_real_batch(make_feats_dir, rnnt_weight):
    d = make_feats_dir(n_utt=3, seconds=1.0)
    tok = GraphemeTokenizer(GraphemeTokenizer.build_token_list(["hello 0", "hello 1", "hello 2"]))
    ds = FeatsTextDataset(d, tok)
    batch = collate_asr([ds[i] for i in range(len(ds))])
    assert batch.targets.shape == (6, 7) and batch.target_lengths.tolist() == [7] * 6
    torch.manual_seed(0)
    model = small_asr(rnnt_weight, tok.vocab_size)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(12):
        out = model(batch)
        assert math.isfinite(out["loss"].item())
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    assert losses[-1] < 0.7 * losses[0]
    assert ("loss_ctc" in out) == (rnnt_weight < 1) and ("loss_rnnt" in out) == (rnnt_weight > 0)
    model.eval()
    ev = model.make_evaluator()
    with torch.no_grad():
        ev.update(model(batch), batch)
    assert 0.0 <= ev.compute()["acc"] <= 1.0 or rnnt_weight == 1.0


def test_paper_configuration_builds_and_reports_parameters():
    conf = {"encoder": {"d_model": 512, "num_layers": 12, "num_heads": 8, "ffn_dim": 2048},
            "pred_hidden": 640, "pred_layers": 1, "joint_dim": 512, "pred_embed_dim": 512}
    model = build_model("conformer_transducer", conf, input_dim=80, vocab_size=804)
    n = sum(p.numel() for p in model.parameters())
    print(f"paper configuration: {n / 1e6:.1f} M parameters")
    assert 75e6 < n < 95e6


def _brute_force_label_probs(probs: torch.Tensor, blank: int = 0):
    """Sum the probability of every frame path by its collapsed label sequence."""
    import itertools

    T, V = probs.shape
    totals = {}
    for path in itertools.product(range(V), repeat=T):
        p = float(torch.prod(probs[torch.arange(T), torch.tensor(path)]))
        labels, prev = [], None
        for k in path:
            if k != prev and k != blank:
                labels.append(k)
            prev = k
        totals[tuple(labels)] = totals.get(tuple(labels), 0.0) + p
    return totals


def test_prefix_beam_search_matches_brute_force():
    from speechser.decode.ctc import ctc_prefix_beam_search

    torch.manual_seed(1)
    probs = torch.softmax(torch.randn(5, 3) * 2, dim=-1)
    exact = _brute_force_label_probs(probs)
    best_label, best_p = max(exact.items(), key=lambda kv: kv[1])
    results = ctc_prefix_beam_search(probs.log(), 5, beam=50)
    assert tuple(results[0][0]) == best_label
    for tokens, lp in results:
        assert math.exp(lp) == pytest.approx(exact[tuple(tokens)], rel=1e-6)
    # a confident model: beam search and greedy agree
    sharp = torch.full((6, 4), 0.01)
    for t, k in enumerate([1, 1, 0, 1, 3, 3]):
        sharp[t, k] = 0.97
    assert ctc_prefix_beam_search(sharp.log(), 6, beam=4)[0][0] == ctc_greedy_search(sharp.log()[None], torch.tensor([6]))[0].tokens == [1, 1, 3]


def test_decoders_recover_the_targets_of_an_overfit_batch(make_feats_dir):
    """Trained to near-zero loss on one batch, CTC greedy, CTC beam and RNN-T greedy all
    return the transcripts (decoders agree on a confident model)."""
    from speechser.decode.ctc import ctc_prefix_beam_search
    from speechser.decode.rnnt import rnnt_beam_search, rnnt_greedy_search

    d = make_feats_dir(n_spk=1, n_utt=3, seconds=1.0)
    texts = ["go", "no", "yes"]
    (d / "text").write_text("".join(f"spkA-u{i} {t}\n" for i, t in enumerate(texts)))
    tok = GraphemeTokenizer(GraphemeTokenizer.build_token_list(texts))
    batch = collate_asr([FeatsTextDataset(d, tok)[i] for i in range(3)])
    torch.manual_seed(0)
    model = small_asr(0.5, tok.vocab_size)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        loss = model(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        enc, lens = model.encode(batch.feats, batch.lengths)
        lp = model.ctc_log_probs(enc)
    greedy = [h.tokens for h in ctc_greedy_search(lp, lens)]
    beam = [ctc_prefix_beam_search(lp[b], int(lens[b]), beam=4)[0][0] for b in range(3)]
    rnnt = rnnt_greedy_search(enc, lens, model.predictor, model.joint)
    rnnt_beam = [rnnt_beam_search(enc[b], int(lens[b]), model.predictor, model.joint, beam=4)[0][0] for b in range(3)]
    refs = [tok.encode(t) for t in texts]
    assert greedy == refs and beam == refs and rnnt == refs and rnnt_beam == refs
    assert all(h.confidence > 0.5 for h in ctc_greedy_search(lp, lens))


def test_rnnt_beam_of_one_equals_greedy_with_one_symbol_per_frame():
    from speechser.decode.rnnt import rnnt_beam_search, rnnt_greedy_search

    torch.manual_seed(3)
    model = small_asr(1.0, 6).eval()
    with torch.no_grad():
        enc, lens = model.encode(torch.randn(2, 60, 40), torch.tensor([60, 45]))
    greedy = rnnt_greedy_search(enc, lens, model.predictor, model.joint, max_symbols_per_frame=1)
    for b in range(2):
        results = rnnt_beam_search(enc[b], int(lens[b]), model.predictor, model.joint, beam=1)
        assert results[0][0] == greedy[b]
    wide = rnnt_beam_search(enc[0], int(lens[0]), model.predictor, model.joint, beam=4)
    scores = [s for _, s in wide]
    assert scores == sorted(scores, reverse=True) and len({tuple(t) for t, _ in wide}) == len(wide)
