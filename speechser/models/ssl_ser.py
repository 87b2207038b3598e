"""An SSL encoder on the waveform for SER, optionally fused with a trained ASR encoder.

Registry name ``ssl_ser``. Waveforms ``(B, S)`` -> SSL frames ``(B, T, D_ssl)``
(:mod:`speechser.nets.ssl`: a weighted sum of the layers, or one layer) ->
``Linear`` ``(B, T, dim)`` [-> cross-attention to the ASR encoder's output
``(B, U, d_asr)`` when ``asr_exp_dir``/``asr_model`` is set, as in the VLSP 2025
system] -> the shared head: attentive statistics pooling ``(B, 2 dim)`` ->
embedding ``(B, embed_dim)`` (LayerNorm) -> logits ``(B, C)``, hybrid
CE + SupCon loss. The training config needs ``data.load_audio: true``, unless ``ssl.cached``: then the
features are stage 3's stored hidden states of the same encoder (``ssl_frames``, every state), read in place
of running it (the same outputs as the frozen live encoder, at the cost of the head alone).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

import torch
from torch import nn

from speechser.config import check_ranges
from speechser.data.ser_dataset import Batch, lengths_to_mask
from speechser.models.abs_model import AbsSERModel
from speechser.models.asr_branch import (
    ASREncoderBranch,
    ASRFusionOptions,
    build_asr_fusion,
    need_audio,
    uses_asr_branch,
)
from speechser.nets.fusion import CrossAttentionFusion
from speechser.nets.ser_head import SERHead, SERHeadOptions
from speechser.nets.ssl import SSLConfig, SSLEncoder


@dataclass
class SSLSERConfig(SERHeadOptions, ASRFusionOptions):
    """An empty ``asr_exp_dir`` (the default) means SSL only, without the ASR branch."""

    ssl: SSLConfig = field(default_factory=SSLConfig)
    dim: int = 256

    def __post_init__(self) -> None:
        check_ranges(self, dim="[1, inf)")
        super().__post_init__()


class SSLSER(AbsSERModel):
    def __init__(self, conf: SSLSERConfig, input_dim: int, num_classes: int,
                 class_weights: Optional[List[float]] = None) -> None:
        super().__init__()  # input_dim (the filterbank's, unused: the SSL encoder reads the waveform)
        self.conf = conf
        self.ssl = SSLEncoder(conf.ssl)
        self.proj = nn.Linear(self.ssl.output_dim, conf.dim)
        self.asr: Optional[ASREncoderBranch] = None
        self.fusion: Optional[CrossAttentionFusion] = None
        if uses_asr_branch(conf):
            self.asr, self.fusion = build_asr_fusion(conf, conf.dim, conf.dropout)
        self.head = SERHead(conf.dim, num_classes, conf, "layer", class_weights, extra_dim=self.head_extra_dim())

    def head_extra_dim(self) -> int:
        """Width a subclass adds to the head's input beside the pooled frames (0 here)."""
        return 0

    def embed_batch(self, batch: Batch) -> torch.Tensor:
        return self.head.pool_embed(*self.ssl_frames(batch))

    def ssl_frames(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Waveforms -> frames ``(B, T, dim)`` (zero beyond each length; fused with the ASR encoder when it
        has one) and their mask ``(B, T)``."""
        x, lens = self.ssl.batch_frames(batch, "ssl_ser")  # stage 3's stored states with ssl.cached
        mask = lengths_to_mask(lens, x.shape[1])
        x = self.proj(x)
        if self.asr is not None and self.fusion is not None:
            need_audio(batch, "ssl_ser's ASR branch")
            mem, mem_lens = self.asr(batch.wavs, batch.wav_lengths, batch.keys)
            x = self.fusion(x, mem, lengths_to_mask(mem_lens, mem.shape[1]))
        return x * mask.unsqueeze(-1).to(x.dtype), mask
