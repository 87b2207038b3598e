"""BEST-RQ self-supervised pre-training of the Conformer encoder (Chiu et al., 2022).

Registry name ``bestrq_conformer``. Targets come from a random-projection
quantizer that is never trained:

1. the (CMVN-normalized) input features ``(B, T, D)`` are stacked by
   ``s = stack_frames``, the encoder's subsampling factor (4 for ``conv2d4``,
   8 for FastConformer's ``dw_striding8``), into ``(B, T // s, s D)``, one
   target per encoder frame;
2. a frozen random projection ``(s D, codebook_dim)`` (Xavier-normal) maps each
   stack to ``codebook_dim`` (16) dimensions, which are L2-normalized;
3. the target is the index of the nearest entry of a frozen random codebook
   ``(codebook_size, codebook_dim)`` (8192 x 16, standard normal rows,
   L2-normalized); for unit vectors the nearest by distance is the one with
   the largest dot product.

The projection and codebook are drawn from ``quantizer_seed`` alone, so the
targets are a deterministic function of the features. The encoder sees the
features with spans of frames replaced by noise: each frame starts a masked
span of ``mask_span`` frames with probability ``mask_prob``; masked frames
become ``N(0, mask_noise_std^2)``. A linear head over the encoder output
predicts the target of each subsampled frame, and the loss is the
cross-entropy over masked subsampled frames only (a subsampled frame ``j`` is
masked when any of input frames ``s j .. s j + s - 1`` is). The valid metric ``acc``
is the masked-frame prediction accuracy.

The pre-trained encoder initializes ASR training through the ASR config:
``trainer.init_param: ["exp/bestrq/valid.acc.ave_5best.pt:encoder.:encoder."]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict

import torch
import torch.nn.functional as F
from torch import nn

from speechser.config import ConfigValueError, check_ranges
from speechser.data.asr_dataset import ASRBatch
from speechser.metrics.evaluator import Evaluator
from speechser.models.abs_model import AbsModel
from speechser.nets.conformer import ConformerConfig, ConformerEncoder, lengths_mask


@dataclass
class BestRQConfig:
    encoder: ConformerConfig = field(default_factory=ConformerConfig)
    codebook_size: int = 8192
    codebook_dim: int = 16
    #: Input frames per target; 0 = the encoder's subsampling factor (any other value must equal it, or
    #: the targets would not line up with the encoder frames).
    stack_frames: int = 0
    mask_prob: float = 0.01
    mask_span: int = 40
    mask_noise_std: float = 0.1
    quantizer_seed: int = 1234

    def __post_init__(self) -> None:
        check_ranges(self, codebook_size="[1, inf)", codebook_dim="[1, inf)", stack_frames="[0, inf)",
                     mask_prob="[0, 1]", mask_span="[1, inf)", mask_noise_std="[0, inf)")
        factor = self.encoder.subsampling_factor
        if self.stack_frames not in (0, factor):
            raise ConfigValueError("stack_frames", f"{self.stack_frames} does not match the encoder's "
                                   f"{self.encoder.subsampling} subsampling ({factor} input frames per encoder "
                                   f"frame); leave it 0 to follow the encoder")


class RandomProjectionQuantizer(nn.Module):
    """Frozen random projection + codebook: features ``(B, T, D)`` -> targets ``(B, T // stack)``."""

    def __init__(self, input_dim: int, stack: int, codebook_size: int, codebook_dim: int, seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        proj = torch.empty(input_dim * stack, codebook_dim)
        std = (2.0 / (input_dim * stack + codebook_dim)) ** 0.5  # Xavier normal
        proj.normal_(0.0, std, generator=g)
        codebook = F.normalize(torch.randn(codebook_size, codebook_dim, generator=g), dim=-1)
        self.stack = stack
        self.register_buffer("projection", proj)
        self.register_buffer("codebook", codebook)

    @torch.no_grad()
    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        B, T, D = feats.shape
        n = T // self.stack
        stacked = feats[:, : n * self.stack].reshape(B, n, self.stack * D).float()
        z = F.normalize(stacked @ self.projection, dim=-1)  # (B, n, codebook_dim)
        return (z @ self.codebook.t()).argmax(-1)  # (B, n)


def span_mask(lengths: torch.Tensor, T: int, prob: float, span: int, generator: torch.Generator | None = None
              ) -> torch.Tensor:
    """Boolean ``(B, T)``: each valid frame starts a masked span of ``span`` frames with probability ``prob``."""
    if generator is None:
        starts = torch.rand(lengths.shape[0], T, device=lengths.device) < prob
    else:
        starts = (torch.rand(lengths.shape[0], T, generator=generator) < prob).to(lengths.device)
    starts &= lengths_mask(lengths, T)
    if span > 1:
        # frame t is masked when a span starts in (t - span, t]
        kernel = torch.ones(1, 1, span, device=lengths.device)
        covered = F.conv1d(F.pad(starts.float().unsqueeze(1), (span - 1, 0)), kernel).squeeze(1) > 0
    else:
        covered = starts
    return covered & lengths_mask(lengths, T)


class MaskedPredictionEvaluator(Evaluator):
    """BEST-RQ's validation: the mean loss and the accuracy of the codebook predictions on masked frames."""

    def __init__(self) -> None:
        self.loss_sum, self.correct, self.count, self.n = 0.0, 0, 0, 0

    def update(self, output: Dict[str, Any], batch: ASRBatch) -> None:
        self.loss_sum += float(output["loss"]) * len(batch)
        self.n += len(batch)
        self.correct += int(output["correct"])
        self.count += int(output["masked"])

    SUMMED = ("loss_sum", "correct", "count", "n")

    def compute(self) -> Dict[str, float]:
        return {"loss": self.loss_sum / max(self.n, 1), "acc": self.correct / max(self.count, 1)}


class BestRQConformer(AbsModel):
    def __init__(self, conf: BestRQConfig, input_dim: int, vocab_size: int = 0) -> None:
        super().__init__()  # vocab_size: accepted so the ASR entry points can train it; unused
        self.conf = conf
        self.encoder = ConformerEncoder(input_dim, conf.encoder)
        self.quantizer = RandomProjectionQuantizer(input_dim, self.encoder.factor, conf.codebook_size,
                                                   conf.codebook_dim, conf.quantizer_seed)
        self.head = nn.Linear(self.encoder.output_dim, conf.codebook_size)

    def output_frames(self, n: int) -> int:
        """The encoder frames (and targets) ``n`` input frames become; the ASR task's datasets ask it."""
        return self.encoder.output_frames(n)

    @property
    def stack(self) -> int:
        """Input frames per target: the encoder's subsampling factor."""
        return self.quantizer.stack

    def forward(self, batch: ASRBatch) -> Dict[str, Any]:  # type: ignore[override]
        feats, lengths = batch.feats, batch.lengths
        B, T, _ = feats.shape
        targets = self.quantizer(feats)  # (B, T // stack)
        mask = span_mask(lengths, T, self.conf.mask_prob, self.conf.mask_span)
        noise = torch.randn_like(feats) * self.conf.mask_noise_std
        masked_feats = torch.where(mask.unsqueeze(-1), noise, feats)
        enc, enc_lens = self.encoder(masked_feats, lengths)
        n = min(enc.shape[1], targets.shape[1])
        s = self.stack
        sub_mask = mask[:, : n * s].reshape(B, n, s).any(-1) & lengths_mask(enc_lens, enc.shape[1])[:, :n]
        logits = self.head(enc[:, :n]).float()
        sel_logits, sel_targets = logits[sub_mask], targets[:, :n][sub_mask]
        if sel_targets.numel() == 0:
            loss = logits.sum() * 0.0
            correct = 0
        else:
            loss = F.cross_entropy(sel_logits, sel_targets)
            correct = int((sel_logits.argmax(-1) == sel_targets).sum())
        return {"loss": loss, "correct": correct, "masked": int(sel_targets.numel())}

    def make_evaluator(self) -> MaskedPredictionEvaluator:
        return MaskedPredictionEvaluator()
