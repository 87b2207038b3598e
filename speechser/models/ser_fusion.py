"""SER models fused with a trained ASR encoder by cross-attention.

- ``tdnn_asr_fusion``: the ``tdnn_ser`` filterbank TDNN whose frames
  ``(B, T', C)`` attend to the ASR encoder's output ``(B, U, d_asr)`` before
  pooling. Everything else (augmentation, pooling, head, hybrid loss) is
  ``tdnn_ser``'s.
- ``ssl_ser``: an SSL encoder (:mod:`speechser.nets.ssl`) on the waveform,
  frames ``(B, T, D_ssl)`` projected to ``dim``, optionally attending to the
  ASR encoder, then attentive statistics pooling, an embedding layer and a
  classifier, with the same hybrid loss.

Both read waveforms: their configs need ``data.load_audio: true``. The ASR
encoder comes from an ASR experiment directory and checkpoint named in the
config (``asr_exp_dir``, ``asr_checkpoint``), frozen by default
(``freeze_asr``) or fine-tuned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Literal, Optional

import torch
from torch import nn

from speechser.config import check_ranges
from speechser.data.dataset import Batch, lengths_to_mask
from speechser.losses.contrastive import hybrid_ce_supcon
from speechser.models.abs_model import AbsModel
from speechser.models.asr_branch import ASREncoderBranch, ASRFusionOptions, build_asr_fusion
from speechser.models.registry import register_model
from speechser.models.ser_tdnn import TDNNSER, ClassificationEvaluator, TDNNSERConfig
from speechser.nets.fusion import CrossAttentionFusion
from speechser.nets.pooling import AttentiveStatsPooling
from speechser.nets.ssl import SSLConfig, SSLEncoder


def _need_audio(batch: Batch, name: str) -> None:
    if batch.wavs is None or batch.wav_lengths is None:
        raise ValueError(f"model '{name}' reads audio: set data.load_audio: true in the training config")


@dataclass
class TDNNASRFusionConfig(TDNNSERConfig, ASRFusionOptions):
    pass


@register_model("tdnn_asr_fusion", TDNNASRFusionConfig)
class TDNNASRFusion(TDNNSER):
    def __init__(self, conf: TDNNASRFusionConfig, input_dim: int, num_classes: int,
                 class_weights: Optional[List[float]] = None) -> None:
        if not conf.asr_exp_dir:
            raise ValueError("model tdnn_asr_fusion needs model.conf.asr_exp_dir (an ASR experiment)")
        if conf.mixup_alpha > 0:
            raise ValueError("model tdnn_asr_fusion does not support mixup (the audio cannot be mixed alike)")
        super().__init__(conf, input_dim, num_classes, class_weights)
        self.asr, self.fusion = build_asr_fusion(conf, conf.channels, conf.dropout)

    def embed_batch(self, batch: Batch) -> torch.Tensor:
        _need_audio(batch, "tdnn_asr_fusion")
        assert batch.wavs is not None and batch.wav_lengths is not None
        x, mask = self.frames(batch.feats, batch.lengths)
        mem, mem_lens = self.asr(batch.wavs, batch.wav_lengths, batch.keys)
        x = self.fusion(x, mem, lengths_to_mask(mem_lens, mem.shape[1])) * mask.unsqueeze(-1).to(x.dtype)
        return self.pool_embed(x, mask)


@dataclass
class SSLSERConfig(ASRFusionOptions):
    """An empty ``asr_exp_dir`` (the default) means SSL only, without the ASR branch."""

    ssl: SSLConfig = field(default_factory=SSLConfig)
    dim: int = 256
    embed_dim: int = 256
    dropout: float = 0.1
    label_smoothing: float = 0.0
    supcon_weight: float = 0.0
    supcon_temperature: float = 0.1
    #: SupCon form: ``in`` (L_in, the VLSP 2025 paper's eq. 3) or ``out`` (L_out); see ``tdnn_ser``.
    supcon_variant: Literal["paper", "in", "out"] = "paper"

    def __post_init__(self) -> None:
        check_ranges(self, dim="[1, inf)", embed_dim="[1, inf)", dropout="[0, 1)", label_smoothing="[0, 1)",
                     supcon_weight="[0, 1]", supcon_temperature="(0, inf)")
        super().__post_init__()


@register_model("ssl_ser", SSLSERConfig)
class SSLSER(AbsModel):
    """Waveforms ``(B, S)`` -> SSL frames ``(B, T, D_ssl)`` -> ``(B, T, dim)`` [-> cross-attention to the
    ASR encoder] -> pooling ``(B, 2 dim)`` -> embedding ``(B, embed_dim)`` -> logits ``(B, C)``."""

    def __init__(self, conf: SSLSERConfig, input_dim: int, num_classes: int,
                 class_weights: Optional[List[float]] = None) -> None:
        super().__init__()
        self.conf = conf
        self.num_classes = num_classes
        self.register_buffer("input_dim", torch.tensor(input_dim))
        self.ssl = SSLEncoder(conf.ssl)
        self.proj = nn.Linear(self.ssl.output_dim, conf.dim)
        self.asr: Optional[ASREncoderBranch] = None
        self.fusion: Optional[CrossAttentionFusion] = None
        if conf.asr_exp_dir:
            self.asr, self.fusion = build_asr_fusion(conf, conf.dim, conf.dropout)
        self.pool = AttentiveStatsPooling(conf.dim)
        self.embed = nn.Sequential(nn.Linear(self.pool.output_dim, conf.embed_dim), nn.LayerNorm(conf.embed_dim),
                                   nn.ReLU())
        self.dropout = nn.Dropout(conf.dropout)
        self.classifier = nn.Linear(conf.embed_dim, num_classes)
        weight = torch.tensor(class_weights, dtype=torch.float) if class_weights is not None else None
        self.register_buffer("class_weights", weight, persistent=False)

    def embed_batch(self, batch: Batch) -> torch.Tensor:
        _need_audio(batch, "ssl_ser")
        assert batch.wavs is not None and batch.wav_lengths is not None
        x, lens = self.ssl(batch.wavs, batch.wav_lengths)
        mask = lengths_to_mask(lens, x.shape[1])
        x = self.proj(x)
        if self.asr is not None and self.fusion is not None:
            mem, mem_lens = self.asr(batch.wavs, batch.wav_lengths, batch.keys)
            x = self.fusion(x, mem, lengths_to_mask(mem_lens, mem.shape[1]))
        x = x * mask.unsqueeze(-1).to(x.dtype)
        return self.embed(self.pool(x, mask))

    def classify(self, emb: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(emb))

    def forward(self, batch: Batch) -> dict:  # type: ignore[override]
        emb = self.embed_batch(batch)
        logits = self.classify(emb)
        c = self.conf
        loss = hybrid_ce_supcon(logits, emb, batch.labels, c.supcon_weight, c.supcon_temperature, c.label_smoothing,
                                self.class_weights, c.supcon_variant)
        return {"loss": loss, "logits": logits.detach()}

    def make_evaluator(self) -> ClassificationEvaluator:
        return ClassificationEvaluator(self.num_classes)
