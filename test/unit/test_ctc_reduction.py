"""The auxiliary CTC loss's reduction (speechser/losses/ctc.py) and how the models weigh it: each term as
printed, ``token`` the per-token mean that puts it on the cross-entropy's scale."""

import pytest
import torch
import torch.nn.functional as F

from speechser.losses.ctc import ctc_loss


def batch_of_two():
    torch.manual_seed(0)
    lp = torch.randn(2, 12, 5).log_softmax(-1)
    targets = torch.tensor([[1, 2, 3, 4], [2, 2, 0, 0]])
    return lp, targets, torch.tensor([12, 9]), torch.tensor([4, 2])


def test_token_divides_each_utterance_by_its_tokens_and_utterance_sums_them():
    lp, y, n_in, n_tok = batch_of_two()
    per = [float(F.ctc_loss(lp[b, : n_in[b]].unsqueeze(1), y[b : b + 1, : n_tok[b]], n_in[b : b + 1],
                            n_tok[b : b + 1], reduction="sum")) for b in range(2)]
    assert float(ctc_loss(lp, y, n_in, n_tok, "utterance")) == pytest.approx((per[0] + per[1]) / 2, rel=1e-5)
    assert float(ctc_loss(lp, y, n_in, n_tok, "token")) == pytest.approx((per[0] / 4 + per[1] / 2) / 2, rel=1e-5)
    with pytest.raises(ValueError, match="CTC reduction 'frame'"):
        ctc_loss(lp, y, n_in, n_tok, "frame")


def test_the_auxiliary_tasks_weigh_each_term_and_report_it_unweighted():
    from types import SimpleNamespace

    from speechser.nets.aux_tasks import AuxiliaryTasks, MetadataOptions

    torch.manual_seed(0)
    opts = MetadataOptions(aux_weights={"text": 0.2, "utt2gender": 0.5}, co_attention=False)
    tasks = AuxiliaryTasks(6, {"utt2gender": 2}, opts, 0.0, vocab_size=5)
    x, mask = torch.randn(2, 12, 6), torch.ones(2, 12, dtype=torch.bool)
    _, logits = tasks(x, mask)
    _, y, _, n_tok = batch_of_two()
    batch = SimpleNamespace(tokens=y, token_lengths=n_tok, aux={"utt2gender": torch.tensor([0, 1])})
    total, terms = tasks.loss(logits, batch, mask)
    ctc = ctc_loss(logits["text"], y, torch.tensor([12, 12]), n_tok, "token")
    ce = F.cross_entropy(logits["utt2gender"], batch.aux["utt2gender"])
    assert float(terms["text"]) == pytest.approx(ctc.item()) and float(terms["utt2gender"]) == pytest.approx(ce.item())
    assert total.item() == pytest.approx(0.2 * ctc.item() + 0.5 * ce.item(), rel=1e-5)
