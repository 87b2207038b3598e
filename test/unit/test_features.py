import numpy as np
import torch
import torchaudio.compliance.kaldi as kaldi

from speechser.features.fbank import CMVN, FbankOptions, accumulate_cmvn, cmvn_mean_std, compute_fbank


def test_fbank_matches_torchaudio_kaldi_and_shape():
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    feats = compute_fbank(x, 16000)
    assert feats.shape == (98, 128)  # 1 + (16000 - 400) // 160
    ref = kaldi.fbank(torch.from_numpy(x * 32768).unsqueeze(0), num_mel_bins=128, frame_length=25.0,
                      frame_shift=10.0, dither=0.0, energy_floor=0.0, sample_frequency=16000.0)
    assert np.allclose(feats, ref.numpy(), atol=1e-5)
    assert compute_fbank(x, 16000, FbankOptions(num_mel_bins=80)).shape == (98, 80)


def test_cmvn_stats_match_numpy():
    rng = np.random.default_rng(1)
    mats = [rng.standard_normal((n, 4)) * 3 + 2 for n in (10, 25, 7)]
    stats = accumulate_cmvn(mats)
    allf = np.concatenate(mats)
    assert stats.shape == (2, 5) and stats[0, -1] == 42
    mean, std = cmvn_mean_std(stats)
    assert np.allclose(mean, allf.mean(0), atol=1e-5) and np.allclose(std, allf.std(0), atol=1e-4)


def test_per_speaker_cmvn_normalizes_each_speaker():
    rng = np.random.default_rng(2)
    a = [rng.standard_normal((30, 3)) + 5 for _ in range(2)]
    b = [rng.standard_normal((30, 3)) * 4 - 1 for _ in range(2)]
    cmvn = CMVN({"A": accumulate_cmvn(a), "B": accumulate_cmvn(b)},
                utt2spk={"a0": "A", "a1": "A", "b0": "B", "b1": "B"})
    out = np.concatenate([cmvn("b0", b[0]), cmvn("b1", b[1])])
    assert np.allclose(out.mean(0), 0, atol=1e-5) and np.allclose(out.std(0), 1, atol=1e-4)
