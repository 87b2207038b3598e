"""The encoder of a trained ASR experiment as a branch of another model.

``ASREncoderBranch(exp_dir, checkpoint)`` rebuilds the ASR model from
``exp_dir/config.yaml``, loads ``checkpoint`` and keeps its Conformer
encoder. It takes 16 kHz waveforms ``(B, S)`` and computes what the ASR model
was trained on: Kaldi fbank with the ASR model's number of bins, then the
experiment's global CMVN (``exp_dir/cmvn.ark``, which ASR training writes; older
experiments fall back to the ``data.cmvn_stats`` path of their config). Output:
``(B, U, d_model)`` with lengths ``(B,)``. Frozen (the default) it stays in
eval mode and runs without gradients, and, given utterance keys, it caches
each utterance's output in memory (``cache``): the encoder then runs once
per utterance instead of once per epoch. A cache entry is keyed by the
utterance key *and* a content hash of its samples (:func:`waveform_digest`),
so two sets that share utterance ids (folds, train/test sets of different
corpora, a re-prepared data directory) never read each other's outputs:
different audio under the same id is a cache miss, computed and stored
anew. Augmentation that changed the waveform every epoch would therefore
only fill the cache, never hit it; the SER datasets augment the SER model's
own features, not the waveform.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import kaldiio
import numpy as np
import torch
from torch import nn

from speechser.config import check_ranges, from_dict, read_yaml
from speechser.features.fbank import FbankOptions, cmvn_mean_std, fbank_torch
from speechser.models.registry import build_model
from speechser.nets.fusion import CrossAttentionFusion
from speechser.train.checkpoint import load_model_state


def _cmvn_stats_path(exp_dir: Path, configured: str) -> Path:
    candidates = [exp_dir / "cmvn.ark"]
    if configured:
        candidates += [Path(configured), exp_dir.parent.parent / configured]
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError(f"{exp_dir}: no CMVN statistics (looked for {', '.join(map(str, candidates))})")


def load_asr_experiment(exp_dir: Path | str, checkpoint: str) -> Tuple[nn.Module, np.ndarray, np.ndarray]:
    """The trained ASR model of an experiment, with the mean and standard deviation ``(D,)`` of the
    global CMVN its features were normalized with. ``checkpoint`` is relative to ``exp_dir`` or absolute."""
    from speechser.train.asr import ASRTrainConfig

    exp_dir = Path(exp_dir)
    conf = from_dict(ASRTrainConfig, read_yaml(exp_dir / "config.yaml"), source=str(exp_dir / "config.yaml"))
    ckpt = Path(checkpoint) if Path(checkpoint).is_absolute() else exp_dir / checkpoint
    if not ckpt.is_file():
        raise FileNotFoundError(f"{ckpt}: no such ASR checkpoint")
    state = load_model_state(ckpt)
    # The output vocabulary size from the weights (the token list may live elsewhere).
    vocab = next((int(state[k].shape[0]) for k in ("ctc.weight", "joint.out.weight") if k in state), 0)
    model = build_model(conf.model.name, conf.model.conf, input_dim=int(state["input_dim"]), vocab_size=vocab)
    model.load_state_dict(state)
    mean, std = cmvn_mean_std(kaldiio.load_mat(str(_cmvn_stats_path(exp_dir, conf.data.cmvn_stats))))
    return model, mean, std


def waveform_digest(wav: torch.Tensor) -> str:
    """A content hash of one utterance's samples ``(S,)`` (unpadded): SHA-1 over their length, dtype and
    bytes (on the CPU, contiguous), so that equal audio gives equal digests on any device."""
    w = wav.detach().to("cpu").contiguous()
    h = hashlib.sha1(f"{w.shape[0]}:{w.dtype}:".encode())
    h.update(w.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class ASREncoderBranch(nn.Module):
    def __init__(self, exp_dir: Path | str, checkpoint: str, freeze: bool = True, num_layers: int = 0,
                 cache: bool = True) -> None:
        super().__init__()
        model, mean, std = load_asr_experiment(exp_dir, checkpoint)
        self.encoder = model.encoder
        self.num_layers = num_layers or len(self.encoder.layers)
        self.output_dim = self.encoder.output_dim
        self.fbank_opts = FbankOptions(num_mel_bins=int(model.input_dim))
        self.register_buffer("cmvn_mean", torch.from_numpy(mean))
        self.register_buffer("cmvn_istd", 1.0 / torch.from_numpy(std))
        self.frozen = freeze
        if freeze:
            self.encoder.requires_grad_(False)
        self.use_cache = cache and freeze
        #: (utterance key, :func:`waveform_digest` of its samples) -> encoder output ``(U, d_model)``.
        self._cache: Dict[Tuple[str, str], torch.Tensor] = {}

    def train(self, mode: bool = True) -> "ASREncoderBranch":
        super().train(mode)
        if self.frozen:
            self.encoder.eval()
        return self

    def features(self, wavs: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(B, S)`` samples -> normalized fbank ``(B, T, bins)`` and frame counts ``(B,)``."""
        mats = [fbank_torch(w[: int(n)], self.fbank_opts) for w, n in zip(wavs, lengths)]
        flen = torch.tensor([m.shape[0] for m in mats], device=wavs.device)
        feats = torch.nn.utils.rnn.pad_sequence(mats, batch_first=True)
        feats = (feats - self.cmvn_mean) * self.cmvn_istd
        mask = torch.arange(feats.shape[1], device=wavs.device)[None, :] < flen[:, None]
        return feats * mask.unsqueeze(-1).to(feats.dtype), flen

    def encode(self, wavs: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            feats, flen = self.features(wavs, lengths)
            return self.encoder(feats, flen, num_layers=self.num_layers)

    def forward(self, wavs: torch.Tensor, lengths: torch.Tensor, keys: Optional[Sequence[str]] = None
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(B, S)``, ``(B,)`` -> ``(B, U, d_model)``, ``(B,)``; ``keys`` name the utterances (cache, keyed
        by ``(key, waveform_digest(samples))``)."""
        if not self.use_cache or keys is None:
            return self.encode(wavs, lengths)
        if len(keys) != wavs.shape[0]:
            raise ValueError(f"{len(keys)} utterance keys for a batch of {wavs.shape[0]} waveforms")
        ids = [(k, waveform_digest(w[: int(n)])) for k, w, n in zip(keys, wavs, lengths)]
        todo = [i for i, c in enumerate(ids) if c not in self._cache]
        if todo:
            idx = torch.tensor(todo, device=wavs.device)
            sub_len = lengths[idx]
            enc, enc_lens = self.encode(wavs[idx, : int(sub_len.max())], sub_len)
            for j, i in enumerate(todo):
                self._cache[ids[i]] = enc[j, : int(enc_lens[j])].detach()
        outs = [self._cache[c].to(wavs.device) for c in ids]
        out_lens = torch.tensor([o.shape[0] for o in outs], device=wavs.device)
        return torch.nn.utils.rnn.pad_sequence(outs, batch_first=True), out_lens


@dataclass
class ASRFusionOptions:
    """The config fields of a model that attends to a trained ASR encoder (mixed into its config)."""

    #: ASR experiment directory (its config.yaml, cmvn.ark); empty = no ASR branch.
    asr_exp_dir: str = ""
    #: Checkpoint file, relative to ``asr_exp_dir`` or absolute.
    asr_checkpoint: str = "valid.acc.ave_5best.pt"
    freeze_asr: bool = True
    #: Use the first N Conformer layers of the ASR encoder (0 = all).
    asr_num_layers: int = 0
    #: Keep each utterance's (frozen) ASR encoder output in memory after its first batch (keyed by the
    #: utterance key and a hash of its audio, so that sets sharing keys do not collide).
    cache_asr: bool = True
    fusion_heads: int = 4
    #: Training only: probability that an utterance skips the fusion (see CrossAttentionFusion).
    modality_dropout: float = 0.0

    def __post_init__(self) -> None:
        check_ranges(self, asr_num_layers="[0, inf)", fusion_heads="[1, inf)", modality_dropout="[0, 1]")


def build_asr_fusion(opts: ASRFusionOptions, query_dim: int, dropout: float
                     ) -> Tuple[ASREncoderBranch, CrossAttentionFusion]:
    """The ASR branch named by ``opts`` and a cross-attention from ``(B, T, query_dim)`` frames to it."""
    branch = ASREncoderBranch(opts.asr_exp_dir, opts.asr_checkpoint, opts.freeze_asr, opts.asr_num_layers,
                              opts.cache_asr)
    return branch, CrossAttentionFusion(query_dim, branch.output_dim, opts.fusion_heads, dropout,
                                        opts.modality_dropout)
