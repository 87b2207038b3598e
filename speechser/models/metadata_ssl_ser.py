"""The metadata-enhanced SER system of paper 002 on an SSL encoder (its setting).

Registry name ``metadata_ssl_ser``. ``ssl_ser``'s encoder (an SSL model on the waveform, its layers
combined by ARI with ``ssl.ari: true`` as the paper does, or a weighted sum, its ablation; frames
projected to ``dim``) feeds the auxiliary metadata heads, the co-attention and the shared SER head
(:mod:`speechser.models.metadata_ser_mixin`). Two-stage fine-tuning as the paper sets it: stage 1 (``stage1_epochs``)
trains the auxiliary tasks with the CNN frozen (``ssl.freeze_feature_extractor``, the default) and
every transformer layer fine-tuned; stage 2 adds the SER loss and freezes the CNN, the input
projection, the positional embedding and the first ``stage2_freeze`` transformer layers (the paper: 4
of 12). TDSA (speed perturbation 0.8 / 1.0 / 1.2, training only) is the data option
``data.augment.speed``. The ASR (CTC) auxiliary task is ``aux_weights: {text: w}`` with
``data.load_text: true``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Mapping, Optional, Sequence

import torch

from speechser.data.ser_dataset import Batch
from speechser.models.metadata_ser_mixin import MetadataSERMixin
from speechser.models.ssl_ser import SSLSER, SSLSERConfig
from speechser.nets.aux_tasks import MetadataOptions


@dataclass
class MetadataSSLSERConfig(SSLSERConfig, MetadataOptions):
    pass


class MetadataSSLSER(MetadataSERMixin, SSLSER):
    def __init__(self, conf: MetadataSSLSERConfig, input_dim: int, num_classes: int,
                 class_weights: Optional[List[float]] = None, aux_classes: Optional[Mapping[str, int]] = None,
                 tokens: Optional[Sequence[str]] = None) -> None:
        super().__init__(conf, input_dim, num_classes, class_weights)
        if conf.stage2_freeze > self.ssl.num_layers:
            raise ValueError(f"stage2_freeze {conf.stage2_freeze}: the SSL model has {self.ssl.num_layers} layers")
        self.init_metadata(conf.dim, aux_classes, conf.dropout, tokens)

    def head_extra_dim(self) -> int:
        return self.extra_head_dim(self.conf.dim, self.conf)

    def encoder_frames(self, batch: Batch) -> tuple:
        return self.ssl_frames(batch)

    def frozen_modules(self) -> List[torch.nn.Module]:
        return self.ssl.lower_modules(self.conf.stage2_freeze, cnn=True)
