"""The encoder of a trained ASR model as a branch of another model.

``ASREncoderBranch(asr_model)`` builds the ASR model that ``asr_model``
describes (the ``model`` section of the ASR experiment's ``config.yaml``:
``name``, ``conf``, ``input_dim``, ``vocab_size``, which the SER task copies
into the SER experiment's own config) and keeps its Conformer encoder. The
weights and the CMVN statistics are not read here: at training time the SER
task loads the ASR checkpoint's encoder through ``trainer.init_param`` and sets
the CMVN (:meth:`ASREncoderBranch.set_cmvn`) from the ASR experiment; both are
then part of every SER checkpoint, so inference reads nothing outside the SER
experiment. It takes 16 kHz waveforms ``(B, S)`` and computes what the ASR model
was trained on: Kaldi fbank with the ASR model's number of bins, then its
global CMVN. Output:
``(B, U, d_model)`` with lengths ``(B,)``. Frozen (the default) it stays in
eval mode and runs without gradients, and, given utterance keys, it caches
each utterance's output in memory (``cache``): the encoder then runs once
per utterance instead of once per epoch. A cache entry is keyed by the
utterance key *and* a content hash of its samples (:func:`waveform_digest`),
so two sets that share utterance ids (folds, train/test sets of different
corpora, a re-prepared data directory) never read each other's outputs:
different audio under the same id is a cache miss, computed and stored
anew. Waveform augmentation (``data.augment``, the VLSP recipe's SER configs) changes an utterance's
samples every epoch, so its outputs would only fill the cache, never hit it: an utterance seen with more
than :data:`MAX_AUDIO_VERSIONS` different audios is taken to be augmented, its entries are dropped and it is
not cached again (the memory stays bounded by that many outputs per utterance; the validation set, never
augmented, stays cached).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple

import numpy as np
import torch
from torch import nn

from speechser.config import ConfigError, check_ranges, from_dict
from speechser.features.fbank import FbankOptions, fbank_torch
from speechser.models.conformer_transducer import ConformerTransducer, ConformerTransducerConfig
from speechser.nets.fusion import CrossAttentionFusion

#: The ASR models whose encoder can be a branch: registry name -> (class, config class).
ASR_MODELS = {"conformer_transducer": (ConformerTransducer, ConformerTransducerConfig)}


def build_asr_model(asr_model: Mapping[str, Any]) -> nn.Module:
    """The (untrained) ASR model an ``asr_model`` section describes: ``{"name", "conf", "input_dim",
    "vocab_size"}``, as the SER task copies it from an ASR experiment's ``config.yaml``."""
    missing = [k for k in ("name", "conf", "input_dim", "vocab_size") if k not in asr_model]
    if missing:
        raise ConfigError(f"model.conf.asr_model lacks {', '.join(missing)} (it is copied from the ASR experiment "
                          "named by model.conf.asr_exp_dir when SER training starts)")
    name = asr_model["name"]
    if name not in ASR_MODELS:
        raise ConfigError(f"model.conf.asr_model.name: '{name}' has no encoder branch ({', '.join(ASR_MODELS)})")
    cls, conf_cls = ASR_MODELS[name]
    conf = from_dict(conf_cls, asr_model["conf"], "model.conf.asr_model.conf")
    return cls(conf, input_dim=int(asr_model["input_dim"]), vocab_size=int(asr_model["vocab_size"]))


#: An utterance cached under this many different audios is not cached under another: its audio changes every
#: time it is read (waveform augmentation). Two are kept: two sets may share an utterance id.
MAX_AUDIO_VERSIONS = 2


def waveform_digest(wav: torch.Tensor) -> str:
    """A content hash of one utterance's samples ``(S,)`` (unpadded): SHA-1 over their length, dtype and
    bytes (on the CPU, contiguous), so that equal audio gives equal digests on any device."""
    w = wav.detach().to("cpu").contiguous()
    h = hashlib.sha1(f"{w.shape[0]}:{w.dtype}:".encode())
    h.update(w.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class ASREncoderBranch(nn.Module):
    def __init__(self, asr_model: Mapping[str, Any], freeze: bool = True, num_layers: int = 0,
                 cache: bool = True) -> None:
        super().__init__()
        model = build_asr_model(asr_model)
        self.encoder = model.encoder
        self.num_layers = num_layers or len(self.encoder.layers)
        self.output_dim = self.encoder.output_dim
        bins = int(asr_model["input_dim"])
        self.fbank_opts = FbankOptions(num_mel_bins=bins)
        # Identity until set_cmvn (training) or a checkpoint (inference) gives the ASR model's statistics.
        self.register_buffer("cmvn_mean", torch.zeros(bins))
        self.register_buffer("cmvn_istd", torch.ones(bins))
        self.frozen = freeze
        if freeze:
            self.encoder.requires_grad_(False)
        self.use_cache = cache and freeze
        #: (utterance key, :func:`waveform_digest` of its samples) -> encoder output ``(U, d_model)``.
        self._cache: Dict[Tuple[str, str], torch.Tensor] = {}
        #: the digests cached for each key, and the keys whose audio changes (augmented: never cached)
        self._versions: Dict[str, List[str]] = {}
        self._varying: Set[str] = set()

    def set_cmvn(self, mean: np.ndarray, std: np.ndarray) -> None:
        """The global CMVN ``(bins,)`` the ASR model was trained with (its experiment's ``cmvn.ark``)."""
        if mean.shape != self.cmvn_mean.shape or std.shape != self.cmvn_istd.shape:
            raise ValueError(f"CMVN statistics of {mean.shape[0]} bins for an ASR encoder of "
                             f"{self.cmvn_mean.shape[0]} bins")
        self.cmvn_mean.copy_(torch.from_numpy(np.asarray(mean, dtype=np.float32)))
        self.cmvn_istd.copy_(1.0 / torch.from_numpy(np.asarray(std, dtype=np.float32)))

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

    def remember(self, key: str, wav: torch.Tensor, output: torch.Tensor) -> None:
        """Store an encoder output ``(U, d_model)`` computed elsewhere for utterance ``key`` with samples
        ``wav (S,)`` (one-pass joint inference: the ASR model's own encoder ran on the same features, with
        the same weights); the next forward over that utterance reads it instead of encoding again."""
        if not self.use_cache:
            raise RuntimeError("remember() needs a frozen branch with its cache on")
        self._store((key, waveform_digest(wav)), output)

    def _store(self, cid: Tuple[str, str], output: torch.Tensor) -> None:
        """Cache ``output`` under ``cid`` unless its key has had more than :data:`MAX_AUDIO_VERSIONS` audios."""
        key, digest = cid
        if key in self._varying:
            return
        versions = self._versions.setdefault(key, [])
        if digest not in versions:
            if len(versions) >= MAX_AUDIO_VERSIONS:  # a new audio every time: augmented, stop caching it
                for d in versions:
                    self._cache.pop((key, d), None)
                del self._versions[key]
                self._varying.add(key)
                return
            versions.append(digest)
        self._cache[cid] = output.detach()

    def forget(self) -> None:
        """Empty the cache (inference: a new set of recordings)."""
        self._cache.clear()
        self._versions.clear()
        self._varying.clear()

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
            computed = {ids[i]: enc[j, : int(enc_lens[j])].detach() for j, i in enumerate(todo)}
            for cid, out in computed.items():
                self._store(cid, out)
        else:
            computed = {}
        outs = [(computed[c] if c in computed else self._cache[c]).to(wavs.device) for c in ids]
        out_lens = torch.tensor([o.shape[0] for o in outs], device=wavs.device)
        return torch.nn.utils.rnn.pad_sequence(outs, batch_first=True), out_lens


@dataclass
class ASRFusionOptions:
    """The config fields of a model that attends to a trained ASR encoder (mixed into its config)."""

    #: ASR experiment directory; empty = no ASR branch. Read when SER training starts (never at inference):
    #: its config.yaml's model section becomes ``asr_model``, its ``cmvn.ark`` the branch's CMVN, and
    #: ``asr_checkpoint``'s encoder the branch's initial weights.
    asr_exp_dir: str = ""
    #: Checkpoint file, relative to ``asr_exp_dir`` or absolute; "" (the default): the experiment's averaged
    #: model, else its best (whatever number of epochs its trainer averaged).
    asr_checkpoint: str = ""
    #: The ASR model (``name``, ``conf``, ``input_dim``, ``vocab_size``), copied from ``asr_exp_dir`` by the
    #: SER task when training starts; leave it empty in YAML files.
    asr_model: Dict[str, Any] = field(default_factory=dict)
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


def need_audio(batch: Any, name: str) -> None:
    """A clear error for a batch without waveforms given to a model that reads audio."""
    if batch.wavs is None or batch.wav_lengths is None:
        raise ValueError(f"model '{name}' reads audio: set data.load_audio: true in the training config")


def uses_asr_branch(opts: ASRFusionOptions) -> bool:
    return bool(opts.asr_exp_dir or opts.asr_model)


def build_asr_fusion(opts: ASRFusionOptions, query_dim: int, dropout: float
                     ) -> Tuple[ASREncoderBranch, CrossAttentionFusion]:
    """The ASR branch ``opts.asr_model`` describes and a cross-attention from ``(B, T, query_dim)`` frames to it."""
    if not opts.asr_model:
        raise ConfigError(f"model.conf.asr_model is empty although asr_exp_dir is '{opts.asr_exp_dir}': build the "
                          "model through speechser.tasks.ser (it copies the ASR experiment's model section)")
    branch = ASREncoderBranch(opts.asr_model, opts.freeze_asr, opts.asr_num_layers, opts.cache_asr)
    return branch, CrossAttentionFusion(query_dim, branch.output_dim, opts.fusion_heads, dropout,
                                        opts.modality_dropout)
