"""Auxiliary metadata tasks of an SER model and the two-stage schedule (paper 002, sec. II-A3, II-A5).

Each auxiliary task ``k`` (a label file of the data directory: ``utt2gender``, ``utt2spk``,
``utt2style``) has its own head on the encoder's frames ``(B, T, D)``: masked mean pooling, a hidden
layer ``a_k = Dropout(ReLU(W_k mp(x)))`` ``(B, H)`` and a classifier ``(B, C_k)``, trained with
cross-entropy weighted by ``λ_k`` (``aux_weights``). The ASR task (name ``text``, the transcripts;
``data.load_text: true``) has a per-frame hidden layer ``Dropout(ReLU(W x_t))`` ``(B, T, H)`` and a
CTC output over the grapheme tokens, ``L = CTC`` (summed over the batch, divided by its size); its
state ``a_text`` for the co-attention is the masked mean of the hidden frames. With ``co_attention`` the hidden states ``a_k``
query the frames (:class:`speechser.nets.co_attention.CoAttention`) and the result joins the SER
head's input.

Losses (the paper's eq. 1 and 2, whose symbols the text we have lost; their description: stage 1 the
"weighted sum of the loss functions for all auxiliary tasks", stage 2 adds the SER loss):

    stage 1:  L = Σ_k λ_k L_k                 stage 2:  L = L_SER + Σ_k λ_k L_k

A single-stage model (``stage1_epochs: 0``) trains ``L_SER + Σ_k λ_k L_k`` from the first epoch.
Utterances whose auxiliary label is not among the task's training classes (index -100: a test
speaker) are ignored by its loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from speechser.config import ConfigValueError, check_choice, check_ranges
from speechser.data.labels import UNKNOWN_LABEL
from speechser.losses.ctc import CTC_REDUCTIONS, ctc_loss
from speechser.nets.co_attention import CoAttention
from speechser.nets.pooling import masked_mean

#: The name of the auxiliary ASR (CTC) task in ``aux_weights``: the data directory's transcripts.
ASR_TASK = "text"


@dataclass
class MetadataOptions:
    """The config keys of the auxiliary tasks and the schedule (mixed into a model's config)."""

    #: Label file -> loss weight λ_k, e.g. ``{utt2gender: 0.3, utt2spk: 0.3}``; the classes are read from the
    #: training set when training starts (``model.aux_labels`` of the resolved config).
    aux_weights: Dict[str, float] = field(default_factory=dict)
    #: Width H of each auxiliary head's hidden layer.
    aux_hidden: int = 128
    #: Co-attention of the frames over the auxiliary hidden states, into the SER head (paper 002, II-A5).
    co_attention: bool = True
    co_attention_heads: int = 4
    #: Epochs of stage 1 (auxiliary tasks only); 0 = one stage, SER and auxiliary tasks together.
    stage1_epochs: int = 0
    #: Stage 2 freezes the encoder's first N layers (the model says which; the paper: 4 of 12).
    stage2_freeze: int = 0
    #: How the auxiliary ASR task's CTC loss is reduced (:mod:`speechser.losses.ctc`): ``token`` (per token,
    #: SpeechBrain's default, on which paper 002 is built) or ``utterance``.
    ctc_reduction: str = "token"

    def __post_init__(self) -> None:
        check_choice(self, ctc_reduction=CTC_REDUCTIONS)
        check_ranges(self, aux_hidden="[1, inf)", co_attention_heads="[1, inf)", stage1_epochs="[0, inf)",
                     stage2_freeze="[0, inf)")
        for name, w in self.aux_weights.items():
            if not w > 0:
                raise ConfigValueError("aux_weights", f"the weight of '{name}' must be > 0, got {w}")
        if self.stage1_epochs and not self.aux_weights:
            raise ConfigValueError("stage1_epochs", "stage 1 trains the auxiliary tasks: set aux_weights")
        parent = getattr(super(), "__post_init__", None)
        if parent is not None:
            parent()


class AuxiliaryTasks(nn.Module):
    """The auxiliary heads over frames ``(B, T, in_dim)``; ``classes``: label file -> number of classes."""

    def __init__(self, in_dim: int, classes: Mapping[str, int], opts: MetadataOptions, dropout: float,
                 vocab_size: int = 0) -> None:
        super().__init__()
        classes = dict(classes)
        if ASR_TASK in opts.aux_weights:
            if vocab_size <= 0:
                raise ValueError("the auxiliary ASR task ('text') needs the transcripts' tokens: set "
                                 "data.load_text: true")
            classes[ASR_TASK] = vocab_size
        missing = sorted(set(opts.aux_weights) - set(classes))
        if missing:
            raise ValueError(f"auxiliary task '{missing[0]}' has no classes (the SER task reads them from the "
                             "training set's label file)")
        self.names = sorted(opts.aux_weights)
        self.weights = {n: float(opts.aux_weights[n]) for n in self.names}
        self.ctc_reduction = opts.ctc_reduction
        self.hidden = nn.ModuleDict({n: nn.Sequential(nn.Linear(in_dim, opts.aux_hidden), nn.ReLU(),
                                                      nn.Dropout(dropout)) for n in self.names})
        self.classifiers = nn.ModuleDict({n: nn.Linear(opts.aux_hidden, int(classes[n])) for n in self.names})
        self.co: Optional[CoAttention] = None
        if opts.co_attention and self.names:
            self.co = CoAttention(in_dim, opts.aux_hidden, len(self.names), opts.co_attention_heads, dropout)

    @staticmethod
    def co_attention_dim(in_dim: int, opts: MetadataOptions) -> int:
        """The width the co-attention adds to the SER head's input (0 without it)."""
        return len(opts.aux_weights) * (in_dim + opts.aux_hidden) if opts.co_attention and opts.aux_weights else 0

    def forward(self, x: torch.Tensor, mask: torch.Tensor
                ) -> Tuple[Optional[torch.Tensor], Dict[str, torch.Tensor]]:
        """-> (the co-attention features ``(B, K (in_dim + H))`` or None, logits per task ``(B, C_k)``)."""
        if not self.names:
            return None, {}
        pooled = masked_mean(x, mask)
        states, logits = {}, {}
        for n in self.names:
            if n == ASR_TASK:  # per frame: (B, T, H) -> CTC log-probabilities (B, T, V); state = mean over frames
                h = self.hidden[n](x)
                logits[n] = torch.log_softmax(self.classifiers[n](h).float(), dim=-1)
                states[n] = masked_mean(h, mask)
            else:
                states[n] = self.hidden[n](pooled)
                logits[n] = self.classifiers[n](states[n])
        co = self.co(x, mask, torch.stack([states[n] for n in self.names], 1)) if self.co is not None else None
        return co, logits

    def loss(self, logits: Mapping[str, torch.Tensor], batch: Any, mask: torch.Tensor
             ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """``Σ_k λ_k L_k`` and each ``L_k`` unweighted (detached, for the training log): cross-entropy against
        ``batch.aux[k]`` (unknown labels, -100, ignored; a batch of only unknown labels adds 0), CTC against
        ``batch.tokens`` for the ASR task (frames from ``mask``; :mod:`speechser.losses.ctc`)."""
        total: Optional[torch.Tensor] = None
        terms: Dict[str, torch.Tensor] = {}
        for n in self.names:
            if n == ASR_TASK:
                if batch.tokens is None or batch.token_lengths is None:
                    raise ValueError("the auxiliary ASR task needs the transcripts: set data.load_text: true")
                term = ctc_loss(logits[n], batch.tokens, mask.sum(1), batch.token_lengths, self.ctc_reduction)
            elif n not in batch.aux:
                raise ValueError(f"the batch has no '{n}' labels (the SER task loads them from the data directory)")
            elif bool((batch.aux[n] != UNKNOWN_LABEL).any()):
                term = F.cross_entropy(logits[n].float(), batch.aux[n], ignore_index=UNKNOWN_LABEL)
            else:
                term = logits[n].sum() * 0.0
            terms[n] = term.detach()
            total = self.weights[n] * term if total is None else total + self.weights[n] * term
        assert total is not None
        return total, terms
