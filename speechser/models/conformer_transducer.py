"""Conformer encoder with a CTC head and an RNN-T (prediction + joint) head.

Registry name ``conformer_transducer``. Loss
``L = rnnt_weight * L_RNNT + (1 - rnnt_weight) * L_CTC``; weight 0 (pure CTC)
and 1 (pure RNN-T) skip the other branch's computation.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import torch
import torch.nn.functional as F
import torchaudio.functional as AF
from torch import nn

from speechser.config import check_ranges
from speechser.data.asr_dataset import ASRBatch
from speechser.data.specaug import SpecAugConfig, SpecAugment
from speechser.decode.ctc import ctc_greedy_search
from speechser.metrics.asr import TokenAccuracyEvaluator
from speechser.models.abs_model import AbsModel
from speechser.nets.conformer import ConformerConfig, ConformerEncoder
from speechser.nets.transducer import JointNetwork, LSTMPredictor


@dataclass
class ConformerTransducerConfig:
    encoder: ConformerConfig = field(default_factory=ConformerConfig)
    pred_embed_dim: int = 256
    pred_hidden: int = 640
    pred_layers: int = 1
    joint_dim: int = 512
    rnnt_weight: float = 0.5
    dropout: float = 0.1
    use_specaug: bool = True
    specaug: SpecAugConfig = field(
        default_factory=lambda: SpecAugConfig(num_time_masks=10, adaptive_num_time_masks=True)
    )

    def __post_init__(self) -> None:
        check_ranges(self, pred_embed_dim="[1, inf)", pred_hidden="[1, inf)", pred_layers="[1, inf)",
                     joint_dim="[1, inf)", rnnt_weight="[0, 1]", dropout="[0, 1)")


class ConformerTransducer(AbsModel):
    def __init__(self, conf: ConformerTransducerConfig, input_dim: int, vocab_size: int) -> None:
        super().__init__()
        if not 0.0 <= conf.rnnt_weight <= 1.0:
            raise ValueError("rnnt_weight must be in [0, 1]")
        self.conf = conf
        self.vocab_size = vocab_size
        self.specaug = SpecAugment(**vars(conf.specaug)) if conf.use_specaug else None
        self.encoder = ConformerEncoder(input_dim, conf.encoder)
        d = self.encoder.output_dim
        self.ctc = nn.Linear(d, vocab_size) if conf.rnnt_weight < 1.0 else None
        self.predictor: Optional[LSTMPredictor] = None
        self.joint: Optional[JointNetwork] = None
        if conf.rnnt_weight > 0.0:
            self.predictor = LSTMPredictor(vocab_size, conf.pred_embed_dim, conf.pred_hidden, conf.pred_layers,
                                           conf.dropout)
            self.joint = JointNetwork(d, conf.pred_hidden, conf.joint_dim, vocab_size)

    def output_frames(self, n: int) -> int:
        """The encoder frames ``n`` input frames become (the ASR task's unalignable rule asks every ASR model
        this: a model class without ``output_frames`` is not an ASR model)."""
        return self.encoder.output_frames(n)

    def encode(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, T, D)`` -> encoder output ``(B, T', d_model)`` and lengths."""
        if self.specaug is not None:
            feats = self.specaug(feats, lengths)
        return self.encoder(feats, lengths)

    def ctc_log_probs(self, enc: torch.Tensor) -> torch.Tensor:
        if self.ctc is None:
            raise RuntimeError("this model has no CTC head (rnnt_weight = 1)")
        return F.log_softmax(self.ctc(enc).float(), dim=-1)

    def forward(self, batch: ASRBatch) -> Dict[str, Any]:  # type: ignore[override]
        enc, enc_lens = self.encode(batch.feats, batch.lengths)
        w = self.conf.rnnt_weight
        loss = enc.new_zeros((), dtype=torch.float32)
        out: Dict[str, Any] = {}
        if self.ctc is not None:
            lp = self.ctc_log_probs(enc)
            ctc = F.ctc_loss(lp.transpose(0, 1), batch.targets, enc_lens, batch.target_lengths, blank=0,
                             reduction="sum", zero_infinity=True) / len(batch)
            loss = loss + (1 - w) * ctc
            out["loss_ctc"] = ctc.detach()
            if not self.training:
                out["hyps"] = [h.tokens for h in ctc_greedy_search(lp, enc_lens)]
        if self.predictor is not None and self.joint is not None:
            pred = self.predictor(batch.targets)
            logits = self.joint(enc, pred).float()
            with warnings.catch_warnings():  # torchaudio 2.9 marks rnnt_loss deprecated; it is still the CPU/GPU kernel
                warnings.simplefilter("ignore", UserWarning)
                rnnt = AF.rnnt_loss(logits, batch.targets.int(), enc_lens.int(), batch.target_lengths.int(), blank=0,
                                    reduction="sum") / len(batch)
            loss = loss + w * rnnt
            out["loss_rnnt"] = rnnt.detach()
        out["loss"] = loss
        if not self.training and "hyps" not in out:
            out["hyps"] = [[] for _ in range(len(batch))]
        return out

    def make_evaluator(self) -> TokenAccuracyEvaluator:
        return TokenAccuracyEvaluator()
