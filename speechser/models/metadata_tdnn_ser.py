"""The metadata-enhanced SER system of paper 002 on the ``tdnn_ser`` filterbank encoder.

Registry name ``metadata_tdnn_ser``. The ``tdnn_ser`` TDNN frames ``(B, T', C)`` feed (1) auxiliary
heads for the metadata tasks named in ``aux_weights`` (gender, speaker, style label files;
:mod:`speechser.nets.aux_tasks`) and (2) the shared SER head, whose input is the attentive-statistics
pooling of the frames concatenated, with ``co_attention``, with the co-attention of the frames over
the auxiliary hidden states ``(B, K (C + H))``. Two-stage fine-tuning (``stage1_epochs`` > 0):
stage 1 trains the auxiliary tasks only, stage 2 adds the SER loss and freezes the stem and the first
``stage2_freeze`` TDNN blocks (the paper freezes the CNN and the first 4 of 12 transformer layers of
an SSL encoder; a from-scratch TDNN has a stem and 4 blocks). The stage follows the epoch
(:meth:`set_epoch`, called by the trainer before each epoch), so a run resumed after the switch is in
stage 2 again, with the same layers frozen.

What the paper does that this model does not: the SSL encoder with ARI (``ssl_ser`` family), TDSA
(speed perturbation 0.8 / 1.0 / 1.2 is the data option ``data.augment.speed``), and the ASR (CTC)
auxiliary task.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional

import torch

from speechser.data.dataset import Batch
from speechser.models.tdnn_ser import TDNNSER, TDNNSERConfig
from speechser.nets.aux_tasks import AuxiliaryTasks, MetadataOptions


@dataclass
class MetadataTDNNSERConfig(TDNNSERConfig, MetadataOptions):
    pass


class MetadataTDNNSER(TDNNSER):
    def __init__(self, conf: MetadataTDNNSERConfig, input_dim: int, num_classes: int,
                 class_weights: Optional[List[float]] = None, aux_classes: Optional[Mapping[str, int]] = None
                 ) -> None:
        if conf.mixup_alpha > 0:
            raise ValueError("model metadata_tdnn_ser does not support mixup (mixed utterances have no metadata)")
        if conf.stage2_freeze > len(conf.dilations):
            raise ValueError(f"stage2_freeze {conf.stage2_freeze}: the TDNN has {len(conf.dilations)} blocks")
        super().__init__(conf, input_dim, num_classes, class_weights)
        self.aux = AuxiliaryTasks(conf.channels, aux_classes or {}, conf, conf.dropout)
        self.stage = 1 if conf.stage1_epochs > 0 else 2

    def head_extra_dim(self) -> int:
        return AuxiliaryTasks.co_attention_dim(self.conf.channels, self.conf)

    def set_epoch(self, epoch: int) -> None:
        """Stage 1 for epochs ``1 .. stage1_epochs``, then stage 2, which freezes the stem and the first
        ``stage2_freeze`` blocks (their weights keep the stage-1 values; BatchNorm statistics as well)."""
        self.stage = 1 if epoch <= self.conf.stage1_epochs else 2
        frozen = self.stage == 2 and self.conf.stage1_epochs > 0 and self.conf.stage2_freeze > 0
        for module in self.frozen_modules():
            module.requires_grad_(not frozen)
        self._frozen = frozen
        self.train(self.training)

    def frozen_modules(self) -> List[torch.nn.Module]:
        """What stage 2 freezes: the optional CNN front-end, the stem and the first ``stage2_freeze`` blocks."""
        mods: List[torch.nn.Module] = [self.stem, *list(self.blocks)[: self.conf.stage2_freeze]]
        return ([self.frontend] if self.frontend is not None else []) + mods

    def train(self, mode: bool = True) -> "MetadataTDNNSER":
        super().train(mode)
        if getattr(self, "_frozen", False):
            for module in self.frozen_modules():
                module.eval()  # frozen layers keep their BatchNorm statistics too
        return self

    def _embed(self, batch: Batch) -> tuple:
        x, mask = self.frames(batch.feats, batch.lengths)
        co, aux_logits = self.aux(x, mask)
        return self.head.pool_embed(x, mask, co), aux_logits

    def embed_batch(self, batch: Batch) -> torch.Tensor:
        return self._embed(batch)[0]

    def forward(self, batch: Batch) -> Dict[str, Any]:  # type: ignore[override]
        emb, aux_logits = self._embed(batch)
        logits = self.classify(emb)
        out: Dict[str, Any] = {"logits": logits.detach()}
        loss_aux = self.aux.loss(aux_logits, batch.aux) if self.aux.names else None
        if self.stage == 1:
            assert loss_aux is not None
            out["loss"] = loss_aux
        else:
            loss_ser = self.head.loss(logits, emb, batch.labels)
            out["loss"] = loss_ser if loss_aux is None else loss_ser + loss_aux
        return out
