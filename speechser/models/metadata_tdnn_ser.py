"""The metadata-enhanced SER system of paper 002 on the ``tdnn_ser`` filterbank encoder.

Registry name ``metadata_tdnn_ser``. The ``tdnn_ser`` TDNN frames ``(B, T', C)`` feed (1) auxiliary
heads for the metadata tasks named in ``aux_weights`` (gender, speaker, style label files;
:mod:`speechser.nets.aux_tasks`) and (2) the shared SER head, whose input is the attentive-statistics
pooling of the frames concatenated, with ``co_attention``, with the co-attention of the frames over
the auxiliary hidden states ``(B, K (C + H))``. Two-stage fine-tuning (``stage1_epochs`` > 0;
:mod:`speechser.models.metadata_ser_mixin`): stage 1 trains the auxiliary tasks only, stage 2 adds the SER loss
and freezes the (optional CNN front-end,) stem and first ``stage2_freeze`` TDNN blocks (the paper
freezes the CNN and the first 4 of 12 transformer layers of an SSL encoder; this TDNN has a stem and
4 blocks). Without auxiliary tasks it is ``tdnn_ser`` exactly (same weights, same outputs).

The SSL encoder with ARI is ``metadata_ssl_ser``. The ASR (CTC) auxiliary task is ``aux_weights: {text: w}``
with ``data.load_text: true``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Mapping, Optional, Sequence

import torch

from speechser.data.ser_dataset import Batch
from speechser.models.metadata_ser_mixin import MetadataSERMixin
from speechser.models.tdnn_ser import TDNNSER, TDNNSERConfig
from speechser.nets.aux_tasks import MetadataOptions


@dataclass
class MetadataTDNNSERConfig(TDNNSERConfig, MetadataOptions):
    pass


class MetadataTDNNSER(MetadataSERMixin, TDNNSER):
    def __init__(self, conf: MetadataTDNNSERConfig, input_dim: int, num_classes: int,
                 class_weights: Optional[List[float]] = None, aux_classes: Optional[Mapping[str, int]] = None,
                 tokens: Optional[Sequence[str]] = None) -> None:
        if conf.mixup_alpha > 0:
            raise ValueError("model metadata_tdnn_ser does not support mixup (mixed utterances have no metadata)")
        if conf.stage2_freeze > len(conf.dilations):
            raise ValueError(f"stage2_freeze {conf.stage2_freeze}: the TDNN has {len(conf.dilations)} blocks")
        super().__init__(conf, input_dim, num_classes, class_weights)
        self.init_metadata(conf.channels, aux_classes, conf.dropout, tokens)

    def head_extra_dim(self) -> int:
        return self.extra_head_dim(self.conf.channels, self.conf)

    def encoder_frames(self, batch: Batch) -> tuple:
        return self.frames(batch.feats, batch.lengths)

    def frozen_modules(self) -> List[torch.nn.Module]:
        """The optional CNN front-end, the stem and the first ``stage2_freeze`` blocks."""
        mods: List[torch.nn.Module] = [self.stem, *list(self.blocks)[: self.conf.stage2_freeze]]
        return ([self.frontend] if self.frontend is not None else []) + mods
