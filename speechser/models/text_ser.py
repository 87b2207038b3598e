"""SER from the transcript alone: a pretrained text encoder (BERT) and the shared head (paper 001's text-only
baseline, Table 1's text-only row, Exp. 8 beside the acoustic and the interacting systems).

Registry name ``text_ser``. Shapes: transcripts (``data.load_text: true``; the data directory's ``text``, the
reference transcript, or an ASR system's hypotheses written there) -> subwords -> the text encoder
(:mod:`speechser.nets.text_encoder`) ``(B, L, D_t)`` and its mask -> the shared head: attentive statistics
pooling ``(B, 2 D_t)`` -> embedding ``(B, embed_dim)`` (LayerNorm) -> logits ``(B, C)``. The audio and the
features are not read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import torch

from speechser.data.ser_dataset import Batch
from speechser.models.abs_model import AbsSERModel
from speechser.nets.ser_head import SERHead, SERHeadOptions
from speechser.nets.text_encoder import TextEncoder, TextEncoderConfig


@dataclass
class TextSERConfig(SERHeadOptions):
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)


class TextSER(AbsSERModel):
    def __init__(self, conf: TextSERConfig, input_dim: int, num_classes: int,
                 class_weights: Optional[List[float]] = None, tokens: Optional[Sequence[str]] = None) -> None:
        # input_dim: the features', unused; tokens: the graphemes the SER task gives every model that reads
        # text, unused (the text encoder has its own subwords)
        super().__init__()
        self.conf = conf
        self.text = TextEncoder(conf.text)
        self.head = SERHead(self.text.output_dim, num_classes, conf, "layer", class_weights)

    def embed_batch(self, batch: Batch) -> torch.Tensor:
        if batch.texts is None:
            raise ValueError("model 'text_ser' reads the transcripts: set data.load_text: true")
        x, mask = self.text(batch.texts)
        return self.head.pool_embed(x * mask.unsqueeze(-1).to(x.dtype), mask)
