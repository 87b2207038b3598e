"""Early fusion of two views of an utterance: the ``tdnn_ser`` filterbank TDNN and an utterance-level
vector (the openSMILE functionals), joined before the embedding (issue 14).

Registry name ``tdnn_vector_ser``. Shapes: features ``(B, T, D)`` -> the TDNN of :mod:`tdnn_ser` ->
attentive statistics pooling ``(B, 2C)``; the vector ``v`` ``(B, F)`` (``batch.vectors``, read from
``data.vector_dir`` and z-normalized per speaker) -> ``Dropout(p_in)`` -> ``Linear(F, H)`` ->
``LayerNorm`` -> ``ReLU`` -> ``Dropout(p)`` ``(B, H)``; the two are concatenated ``(B, 2C + H)`` and go
through the shared head (embedding ``(B, embed_dim)``, classifier, hybrid or soft-label loss).

The functionals of the toolkit's linear baseline (ComParE 2016: F = 6,373) are far wider than the
training set is long (about 430 utterances per Emo-DB fold), so the vector branch is regularized at its
input (``vector_input_dropout``) as well as after its projection. Mixup of feature batches is refused
(a mixed pair has no one vector); the dataset's audio mixing (``data.soft_labels.mix_prob``) gives a
mixture its majority utterance's vector, as it does its metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, cast

import torch
from torch import nn

from speechser.config import check_ranges
from speechser.data.ser_dataset import Batch
from speechser.models.tdnn_ser import TDNNSER, TDNNSERConfig


@dataclass
class TDNNVectorSERConfig(TDNNSERConfig):
    #: Width F of the utterance vectors; 0 in a YAML = from ``data.vector_dir`` when training starts.
    vector_dim: int = 0
    #: Width H of the vector's projection.
    vector_hidden: int = 128
    #: Dropout on the normalized vector (before the projection) and on its projection.
    vector_input_dropout: float = 0.2
    vector_dropout: float = 0.3

    def __post_init__(self) -> None:
        check_ranges(self, vector_dim="[0, inf)", vector_hidden="[1, inf)", vector_input_dropout="[0, 1)",
                     vector_dropout="[0, 1)")
        super().__post_init__()


class TDNNVectorSER(TDNNSER):
    def __init__(self, conf: TDNNVectorSERConfig, input_dim: int, num_classes: int,
                 class_weights: Optional[List[float]] = None) -> None:
        if conf.vector_dim < 1:
            raise ValueError("model tdnn_vector_ser needs model.conf.vector_dim (set from data.vector_dir)")
        if conf.mixup_alpha > 0:
            raise ValueError("model tdnn_vector_ser does not support mixup (a mixed utterance has no vector)")
        super().__init__(conf, input_dim, num_classes, class_weights)
        self.vector_proj = nn.Sequential(
            nn.Dropout(conf.vector_input_dropout),
            nn.Linear(conf.vector_dim, conf.vector_hidden),
            nn.LayerNorm(conf.vector_hidden),
            nn.ReLU(),
            nn.Dropout(conf.vector_dropout),
        )

    @property
    def vector_conf(self) -> TDNNVectorSERConfig:
        return cast(TDNNVectorSERConfig, self.conf)

    def head_extra_dim(self) -> int:  # called while the base class builds the head, after it sets self.conf
        return self.vector_conf.vector_hidden

    def embed_batch(self, batch: Batch) -> torch.Tensor:
        """Features ``(B, T, D)`` and vectors ``(B, F)`` -> embeddings ``(B, embed_dim)``."""
        if batch.vectors is None:
            raise ValueError("model tdnn_vector_ser reads utterance vectors: set data.vector_dir")
        if batch.vectors.shape[-1] != self.vector_conf.vector_dim:
            raise ValueError(f"utterance vectors of width {batch.vectors.shape[-1]}, but the model was built for "
                             f"{self.vector_conf.vector_dim} (another feature set in data.vector_dir?)")
        x, mask = self.frames(batch.feats, batch.lengths)
        v = self.vector_proj(batch.vectors.to(x.dtype))
        return self.head.pool_embed(x, mask, v)
