"""The frozen ASR branch's output cache is keyed by utterance key and audio content: two sets that share
utterance ids cannot read each other's cached encoder outputs."""

import pytest
import torch

from speechser.models.asr_branch import ASREncoderBranch, waveform_digest

BINS = 80
#: A tiny ASR model as the SER task copies it into a fusion experiment's config (model.conf.asr_model).
TINY_ASR = {"name": "conformer_transducer", "input_dim": BINS, "vocab_size": 5,
            "conf": {"encoder": {"d_model": 16, "num_layers": 1, "num_heads": 2, "ffn_dim": 32, "conv_kernel": 3,
                                 "dropout": 0.0, "attention_dropout": 0.0},
                     "pred_embed_dim": 8, "pred_hidden": 8, "joint_dim": 8}}


@pytest.fixture
def branch():
    torch.manual_seed(0)
    b = ASREncoderBranch(TINY_ASR).eval()
    assert b.use_cache
    calls = []
    original = b.encode
    b.encode = lambda w, n: calls.append(len(n)) or original(w, n)
    b.calls, b.uncached = calls, original
    return b


def _batch(*wavs):
    lengths = torch.tensor([len(w) for w in wavs])
    return torch.nn.utils.rnn.pad_sequence(list(wavs), batch_first=True), lengths


def test_same_utterance_id_different_audio_gives_different_outputs(branch):
    g = torch.Generator().manual_seed(1)
    set_a = torch.randn(8000, generator=g) * 0.1  # "utt1" of one set
    set_b = torch.randn(8000, generator=g) * 0.1  # "utt1" of another set: same id, other audio
    wa, la = _batch(set_a)
    wb, lb = _batch(set_b)
    out_a, len_a = branch(wa, la, ["utt1"])
    out_b, len_b = branch(wb, lb, ["utt1"])
    want_b, want_len_b = branch.uncached(wb, lb)
    assert branch.calls == [1, 1]  # the second set's utt1 was encoded, not read from the cache
    assert torch.equal(len_b, want_len_b) and torch.allclose(out_b, want_b, atol=1e-6)
    assert not torch.allclose(out_a, out_b, atol=1e-3)
    # both stay cached, each under its own audio: asking again computes nothing and returns each one's own
    again_a, _ = branch(wa, la, ["utt1"])
    again_b, _ = branch(wb, lb, ["utt1"])
    assert branch.calls == [1, 1]
    assert torch.equal(again_a, out_a) and torch.equal(again_b, out_b)


def test_same_audio_hits_the_cache_whatever_the_padding(branch):
    g = torch.Generator().manual_seed(2)
    short, long = torch.randn(6000, generator=g) * 0.1, torch.randn(9000, generator=g) * 0.1
    w1, l1 = _batch(short)
    first, _ = branch(w1, l1, ["s"])
    w2, l2 = _batch(long, short)  # "s" now padded to 9000 samples in a batch with another utterance
    both, lens = branch(w2, l2, ["l", "s"])
    assert branch.calls == [1, 1]  # only "l" was encoded
    assert torch.equal(both[1, : int(lens[1])], first[0])


def test_waveform_digest_depends_on_content_only():
    w = torch.randn(500)
    assert waveform_digest(w) == waveform_digest(w.clone())
    assert waveform_digest(w) != waveform_digest(w.flip(0))
    assert waveform_digest(w[:400]) != waveform_digest(w)
    assert waveform_digest(torch.zeros(4)) != waveform_digest(torch.zeros(4, dtype=torch.float64))


def test_keys_must_match_the_batch(branch):
    w, n = _batch(torch.randn(6000) * 0.1, torch.randn(6000) * 0.1)
    with pytest.raises(ValueError, match="2 waveforms"):
        branch(w, n, ["only_one"])


def test_an_utterance_augmented_every_epoch_stops_being_cached(branch):
    """Waveform augmentation gives an utterance new audio each epoch: after MAX_AUDIO_VERSIONS audios its
    entries are dropped and it is never stored again (the cache stays bounded), while an utterance read with
    the same audio (a validation set) stays cached; every output is still the encoder's own."""
    from speechser.models.asr_branch import MAX_AUDIO_VERSIONS

    g = torch.Generator().manual_seed(3)
    base = torch.randn(8000, generator=g) * 0.1
    valid, lv = _batch(torch.randn(7000, generator=g) * 0.1)
    for epoch in range(MAX_AUDIO_VERSIONS + 3):
        w, n = _batch(base * (1.0 + 0.05 * epoch))  # the "augmented" training utterance
        out, _ = branch(w, n, ["train1"])
        want, _ = branch.uncached(w, n)
        assert torch.allclose(out, want, atol=1e-6)
        branch(valid, lv, ["valid1"])
        assert sum(k == "train1" for k, _ in branch._cache) <= MAX_AUDIO_VERSIONS
    assert not any(k == "train1" for k, _ in branch._cache)  # dropped once it proved to change every time
    calls = len(branch.calls)
    branch(valid, lv, ["valid1"])
    assert len(branch.calls) == calls  # the unchanging utterance is still read from the cache


def test_a_fastconformer_branch_gives_80_ms_frames_whatever_the_padding():
    """An ASR model with FastConformer's 8x subsampling as the branch: ceil(T / 8) encoder frames for T fbank
    frames, and an utterance padded in a batch gives what it gives alone."""
    import copy

    section = copy.deepcopy(TINY_ASR)
    section["conf"]["encoder"].update(subsampling="dw_striding8", subsampling_channels=8)
    torch.manual_seed(0)
    b = ASREncoderBranch(section, cache=False).eval()
    g = torch.Generator().manual_seed(3)
    short, long = torch.randn(8000, generator=g) * 0.1, torch.randn(12000, generator=g) * 0.1
    alone, n_alone = b(*_batch(short), ["s"])
    both, lens = b(*_batch(long, short), ["l", "s"])
    _, fbank_frames = b.features(*_batch(short))
    assert int(n_alone[0]) == -(-int(fbank_frames[0]) // 8) == b.encoder.output_frames(int(fbank_frames[0]))
    assert int(lens[1]) == int(n_alone[0]) and int(lens[0]) > int(lens[1])
    assert torch.allclose(both[1, : int(lens[1])], alone[0, : int(n_alone[0])], atol=1e-5)
