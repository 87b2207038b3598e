"""An utterance classifier on filterbanks: a residual TDNN with attentive statistics pooling.

Registry name ``tdnn_ser``. Shapes: features ``(B, T, D)`` -> optional 2-D CNN
front-end ``(B, T'', C*F')`` -> convolutional
stem with stride ``stem_stride`` -> ``num_blocks`` residual dilated 1-D conv
blocks ``(B, C, T')`` -> attentive statistics pooling ``(B, 2C)`` ->
embedding ``(B, embed_dim)`` -> logits ``(B, num_classes)`` (the pooling,
embedding, classifier and hybrid loss are the shared :class:`SERHead`).
Learns from scratch; small enough to train on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import torch
from torch import nn

from speechser.config import check_ranges
from speechser.data.ser_dataset import Batch, lengths_to_mask
from speechser.data.specaug import FreqWarp, SpecAugConfig, SpecAugment, TimeStretch
from speechser.models.abs_model import AbsSERModel
from speechser.nets.cnn2d import CNN2dFrontend
from speechser.nets.ser_head import SERHead, SERHeadOptions
from speechser.nets.tdnn import ResTDNNBlock


@dataclass
class TDNNSERConfig(SERHeadOptions):
    channels: int = 256
    #: Optional 2-D CNN before the TDNN: channels and (freq, time) strides per stage; empty = none.
    cnn_channels: List[int] = field(default_factory=list)
    cnn_strides: List[List[int]] = field(default_factory=list)
    stem_kernel: int = 5
    stem_stride: int = 2
    dilations: List[int] = field(default_factory=lambda: [1, 2, 3, 4])
    kernel_size: int = 3
    embed_dim: int = 192  # the head's options (SERHeadOptions), with this model's defaults
    dropout: float = 0.2
    label_smoothing: float = 0.1
    #: Mixup of utterance pairs within a batch during training, lambda ~ Beta(a, a); 0 = off.
    mixup_alpha: float = 0.0
    #: Random frequency-axis warping by up to this fraction (speaker-like variation); 0 = off.
    freq_warp: float = 0.0
    #: Random tempo change of the features by up to this fraction; 0 = off.
    time_stretch: float = 0.0
    use_specaug: bool = True
    specaug: SpecAugConfig = field(default_factory=lambda: SpecAugConfig(freq_width=20, time_width_ratio=0.1))

    def __post_init__(self) -> None:
        check_ranges(self, channels="[1, inf)", cnn_channels="[1, inf)", stem_kernel="[1, inf)",
                     stem_stride="[1, inf)", dilations="[1, inf)", kernel_size="[1, inf)",
                     mixup_alpha="[0, inf)", freq_warp="[0, 1)", time_stretch="[0, 1)")
        super().__post_init__()  # the head's options, then any mixed-in options class (tdnn_asr_fusion)


class TDNNSER(AbsSERModel):
    def __init__(
        self,
        conf: TDNNSERConfig,
        input_dim: int,
        num_classes: int,
        class_weights: Optional[List[float]] = None,
    ) -> None:
        super().__init__()
        self.conf = conf
        self.specaug = SpecAugment(**vars(conf.specaug)) if conf.use_specaug else None
        self.freq_warp = FreqWarp(conf.freq_warp)
        self.time_stretch = TimeStretch(conf.time_stretch)
        C = conf.channels
        self.frontend: Optional[CNN2dFrontend] = None
        if conf.cnn_channels:
            self.frontend = CNN2dFrontend(input_dim, conf.cnn_channels, conf.cnn_strides)
            input_dim = self.frontend.output_dim
        self.stem = nn.Sequential(
            nn.Conv1d(input_dim, C, conf.stem_kernel, stride=conf.stem_stride, padding=conf.stem_kernel // 2),
            nn.BatchNorm1d(C),
            nn.ReLU(inplace=True),
        )
        self.blocks = nn.ModuleList(
            ResTDNNBlock(C, conf.kernel_size, d, conf.dropout) for d in conf.dilations
        )
        self.merge = nn.Sequential(nn.Conv1d(C * len(conf.dilations), C, 1), nn.BatchNorm1d(C), nn.ReLU(inplace=True))
        self.head = SERHead(C, num_classes, conf, "batch", class_weights, extra_dim=self.head_extra_dim())

    def head_extra_dim(self) -> int:
        """Width a subclass adds to the head's input beside the pooled frames (0 here)."""
        return 0

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        k, s = self.conf.stem_kernel, self.conf.stem_stride
        return (lengths + 2 * (k // 2) - k) // s + 1

    def embed_utterances(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``(B, T, D)``, ``(B,)`` -> utterance embeddings ``(B, embed_dim)``."""
        return self.pool_embed(*self.frames(feats, lengths))

    def frames(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, T, D)``, ``(B,)`` -> TDNN frames ``(B, T', C)`` (zero beyond each length) and mask ``(B, T')``."""
        feats = self.freq_warp(feats)
        feats, lengths = self.time_stretch(feats, lengths)
        if self.specaug is not None:
            feats = self.specaug(feats, lengths)
        if self.frontend is not None:
            feats, lengths = self.frontend(feats, lengths)
        x = self.stem(feats.transpose(1, 2))  # (B, C, T')
        out_lens = self.output_lengths(lengths).clamp(min=1, max=x.shape[-1])
        mask = lengths_to_mask(out_lens, x.shape[-1])
        outs = []
        for block in self.blocks:
            x = block(x, mask)
            outs.append(x)
        x = self.merge(torch.cat(outs, dim=1)) * mask.unsqueeze(1).to(x.dtype)
        return x.transpose(1, 2), mask

    def pool_embed(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Frames ``(B, T', C)`` and mask -> attentive statistics pooling -> embeddings ``(B, embed_dim)``."""
        return self.head.pool_embed(x, mask)

    def logits(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``(B, T, D)``, ``(B,)`` -> ``(B, num_classes)``."""
        return self.classify(self.embed_utterances(feats, lengths))

    def embed_batch(self, batch: Batch) -> torch.Tensor:
        """The utterance embeddings ``(B, embed_dim)`` of a batch (what a k-NN datastore holds)."""
        return self.embed_utterances(batch.feats, batch.lengths)

    def forward(self, batch: Batch) -> Dict[str, Any]:  # type: ignore[override]
        if self.training and self.conf.mixup_alpha > 0 and len(batch) > 1:
            return self._forward_mixup(batch)
        return super().forward(batch)

    def _forward_mixup(self, batch: Batch) -> Dict[str, Any]:
        """Mix each utterance with another of the batch: features ``lam * x_i + (1 - lam) * x_j``
        over the longer of the two lengths, loss ``lam * CE(y_i) + (1 - lam) * CE(y_j)``
        (cross-entropy only: mixed utterances have no single label for the contrastive term); with soft
        labels the KL divergence to ``lam * d_i + (1 - lam) * d_j``."""
        a = self.conf.mixup_alpha
        lam = float(torch.distributions.Beta(a, a).sample())
        perm = torch.randperm(len(batch), device=batch.feats.device)
        feats = lam * batch.feats + (1 - lam) * batch.feats[perm]
        lengths = torch.maximum(batch.lengths, batch.lengths[perm])
        logits = self.logits(feats, lengths)
        if batch.soft is not None:
            loss = self.head.class_loss(logits, None, lam * batch.soft + (1 - lam) * batch.soft[perm])
        else:
            loss = lam * self.head.class_loss(logits, batch.labels) + (1 - lam) * self.head.class_loss(
                logits, batch.labels[perm])
        return {"loss": loss, "logits": logits.detach()}
