"""SAILER: a speech foundation model, a light downstream head and an optional text branch (paper 004).

Registry name ``sailer_ser``. Shapes (sec. 2.1, Fig. 1):

- Speech: an SSL encoder on the waveform (:mod:`speechser.nets.ssl`; WavLM with ``ssl.weighted_sum: true``
  and fine-tuned, or Whisper's encoder with ``ssl.layer: -1`` and ``ssl.freeze_all: true``, as the paper
  uses each) -> ``(B, T, D)`` -> three pointwise (1 x 1) convolutions of ``conv_dim`` channels (256 in the
  paper; ReLU between, dropout) -> masked temporal mean ``(B, conv_dim)``.
- Text (``use_text``): a RoBERTa-family encoder (:mod:`speechser.nets.text_encoder`, ``text.weighted_sum``:
  the weighted average of all its layers) over the transcript (``data.load_text: true``) -> masked mean
  ``(B, D_t)``, concatenated with the speech vector.
- A two-layer MLP with ReLU: the shared SER head's embedding layer (Linear, LayerNorm, ReLU) and its
  classifier. Loss: the head's (cross-entropy, or the KL divergence to soft labels, ``data.soft_labels``).
- Multi-task (sec. 2.4), each a linear head on the MLP's hidden layer, added to the loss where the batch
  has the targets: ``secondary_weight`` · KL to the secondary-emotion distribution (utterances without one
  left out), ``attribute_weight`` · MSE to arousal / valence / dominance mapped from ``attribute_range``
  to ``[0, 1]`` (the paper gives no loss or weights for them; these are ours).
The training config needs ``data.load_audio: true`` (and ``data.load_text: true`` with ``use_text``), unless
``ssl.cached``: then the speech branch reads stage 3's stored states of the same (frozen) encoder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from speechser.config import check_ranges
from speechser.data.ser_dataset import Batch, lengths_to_mask
from speechser.losses.classification import soft_label_kl
from speechser.models.abs_model import AbsSERModel
from speechser.nets.pooling import masked_mean
from speechser.nets.ser_head import SERHead, SERHeadOptions
from speechser.nets.ssl import SSLConfig, SSLEncoder
from speechser.nets.text_encoder import TextEncoder, TextEncoderConfig


@dataclass
class SAILERSERConfig(SERHeadOptions):
    ssl: SSLConfig = field(default_factory=lambda: SSLConfig(weighted_sum=True))
    #: Channels of the three pointwise convolutions (the paper's "filter size", 256).
    conv_dim: int = 256
    num_convs: int = 3
    use_text: bool = False
    text: TextEncoderConfig = field(default_factory=lambda: TextEncoderConfig(weighted_sum=True))
    #: Multi-task weights (0 = off): secondary emotions (``data.soft_labels.secondary_file``) and the
    #: emotion attributes (``data.soft_labels.attribute_file``).
    secondary_weight: float = 0.0
    attribute_weight: float = 0.0
    #: The attributes' annotation scale, mapped to [0, 1] for the MSE (MSP-Podcast: 1 to 7).
    attribute_range: List[float] = field(default_factory=lambda: [1.0, 7.0])

    def __post_init__(self) -> None:
        check_ranges(self, conv_dim="[1, inf)", num_convs="[1, inf)", secondary_weight="[0, inf)",
                     attribute_weight="[0, inf)")
        if len(self.attribute_range) != 2 or not self.attribute_range[1] > self.attribute_range[0]:
            raise ValueError(f"attribute_range must be [low, high] with high > low, got {self.attribute_range}")
        super().__post_init__()


class SAILERSER(AbsSERModel):
    def __init__(self, conf: SAILERSERConfig, input_dim: int, num_classes: int,
                 class_weights: Optional[List[float]] = None, tokens: Optional[Sequence[str]] = None) -> None:
        # input_dim: the filterbank's, unused (the model reads the waveform); tokens: the graphemes the SER
        # task gives every model that reads text (data.load_text), unused (the text encoder has its own)
        super().__init__()
        self.conf = conf
        self.ssl = SSLEncoder(conf.ssl)
        layers: List[nn.Module] = []
        width = self.ssl.output_dim
        for i in range(conf.num_convs):
            layers += [nn.Conv1d(width, conf.conv_dim, 1)]
            if i < conf.num_convs - 1:
                layers += [nn.ReLU(), nn.Dropout(conf.dropout)]
            width = conf.conv_dim
        self.pointwise = nn.Sequential(*layers)
        self.text: Optional[TextEncoder] = TextEncoder(conf.text) if conf.use_text else None
        vec_dim = conf.conv_dim + (self.text.output_dim if self.text is not None else 0)
        self.head = SERHead(0, num_classes, conf, "layer", class_weights, extra_dim=vec_dim)
        self.secondary = nn.Linear(conf.embed_dim, num_classes) if conf.secondary_weight > 0 else None
        self.attributes = nn.Linear(conf.embed_dim, 3) if conf.attribute_weight > 0 else None

    def utterance_vector(self, batch: Batch) -> torch.Tensor:
        """Waveforms (and transcripts) -> the MLP's input ``(B, conv_dim [+ D_t])``."""
        x, lens = self.ssl.batch_frames(batch, "sailer_ser")  # (B, T, D); stage 3's stored states with ssl.cached
        mask = lengths_to_mask(lens, x.shape[1])
        h = self.pointwise(x.transpose(1, 2)).transpose(1, 2)  # (B, T, conv_dim)
        parts = [masked_mean(h, mask)]
        if self.text is not None:
            if batch.texts is None:
                raise ValueError("sailer_ser with use_text reads the transcripts: set data.load_text: true")
            t, tmask = self.text(batch.texts)
            parts.append(masked_mean(t, tmask).to(parts[0].dtype))
        return torch.cat(parts, dim=-1)

    def embed_batch(self, batch: Batch) -> torch.Tensor:
        return self.head.embed_vector(self.utterance_vector(batch))

    def forward(self, batch: Batch) -> Dict[str, Any]:  # type: ignore[override]
        emb = self.embed_batch(batch)
        logits = self.classify(emb)
        loss = self.head.loss(logits, emb, batch.labels, batch.soft)
        out: Dict[str, Any] = {"logits": logits.detach()}
        if self.secondary is not None and batch.soft2 is not None:
            has = batch.soft2.sum(-1) > 0
            if has.any():
                sec = soft_label_kl(self.secondary(emb)[has], batch.soft2[has])
                loss = loss + self.conf.secondary_weight * sec
                out["loss_secondary"] = sec.detach()
        if self.attributes is not None and batch.attrs is not None:
            lo, hi = self.conf.attribute_range
            att = F.mse_loss(self._attributes_unit(emb), ((batch.attrs - lo) / (hi - lo)).float())
            loss = loss + self.conf.attribute_weight * att
            out["loss_attributes"] = att.detach()
        out["loss"] = loss
        return out

    def attribute_predictions(self, emb: torch.Tensor) -> Optional[torch.Tensor]:
        """Arousal, valence, dominance ``(B, 3)`` on the annotation scale, from embeddings (or None)."""
        if self.attributes is None:
            return None
        lo, hi = self.conf.attribute_range
        return lo + (hi - lo) * self._attributes_unit(emb)

    def _attributes_unit(self, emb: torch.Tensor) -> torch.Tensor:
        """The attribute head's predictions on [0, 1] ``(B, 3)``."""
        assert self.attributes is not None
        return torch.sigmoid(self.attributes(emb).float())
