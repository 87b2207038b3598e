"""The ``tdnn_ser`` filterbank TDNN fused with a trained ASR encoder by cross-attention.

Registry name ``tdnn_asr_fusion``. The TDNN frames ``(B, T', C)`` attend to the
ASR encoder's output ``(B, U, d_asr)`` (:class:`CrossAttentionFusion`:
``x + Dropout(MHA(LN(x), mem, mem))``, with optional modality dropout) before
the shared head; everything else (augmentation, pooling, head, hybrid loss) is
``tdnn_ser``'s. Reads waveforms (the ASR branch computes its own fbank): the
training config needs ``data.load_audio: true``. The ASR encoder is described
by ``asr_model`` (copied from the ASR experiment ``asr_exp_dir`` when training
starts; see :mod:`speechser.models.asr_branch`), frozen by default
(``freeze_asr``) or fine-tuned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import torch

from speechser.data.ser_dataset import Batch, lengths_to_mask
from speechser.models.asr_branch import ASRFusionOptions, build_asr_fusion, need_audio
from speechser.models.tdnn_ser import TDNNSER, TDNNSERConfig


@dataclass
class TDNNASRFusionConfig(TDNNSERConfig, ASRFusionOptions):
    pass


class TDNNASRFusion(TDNNSER):
    def __init__(self, conf: TDNNASRFusionConfig, input_dim: int, num_classes: int,
                 class_weights: Optional[List[float]] = None) -> None:
        if not (conf.asr_exp_dir or conf.asr_model):
            raise ValueError("model tdnn_asr_fusion needs model.conf.asr_exp_dir (an ASR experiment)")
        if conf.mixup_alpha > 0:
            raise ValueError("model tdnn_asr_fusion does not support mixup (the audio cannot be mixed alike)")
        super().__init__(conf, input_dim, num_classes, class_weights)
        self.asr, self.fusion = build_asr_fusion(conf, conf.channels, conf.dropout)

    def embed_batch(self, batch: Batch) -> torch.Tensor:
        """Features ``(B, T, D)`` and waveforms ``(B, S)`` -> TDNN frames attending to the ASR encoder ->
        embeddings ``(B, embed_dim)``."""
        need_audio(batch, "tdnn_asr_fusion")
        assert batch.wavs is not None and batch.wav_lengths is not None
        x, mask = self.frames(batch.feats, batch.lengths)
        mem, mem_lens = self.asr(batch.wavs, batch.wav_lengths, batch.keys)
        x = self.fusion(x, mem, lengths_to_mask(mem_lens, mem.shape[1])) * mask.unsqueeze(-1).to(x.dtype)
        return self.pool_embed(x, mask)
