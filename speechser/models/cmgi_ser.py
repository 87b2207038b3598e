"""CmGI: SER from acoustic and semantic information with cross-modal gated interaction (paper 001).

Registry name ``cmgi_ser``. Shapes and equations:

- Acoustic extractor (sec. 2.1): an SSL encoder on the waveform, ``x^a (B, T, D_a)`` (HuBERT-large in
  the paper; any :mod:`speechser.nets.ssl` model), its CNN frozen (``ssl.freeze_feature_extractor``)
  and its transformer fine-tuned. A linear CTC head on ``x^a`` recognizes the transcript:
  ``L_ASR = CTC(x^a, T)`` (eq. 1) over the grapheme tokens ``model.tokens`` (the SER task builds them
  from the training transcripts, ``data.load_text: true``).
- Semantic extractor: a BERT-family text encoder (:mod:`speechser.nets.text_encoder`) over the
  ground-truth transcript in training (``train_text: truth``; ``hypothesis`` trains on the CTC
  hypotheses instead) and over the CTC greedy hypothesis of the acoustic branch in evaluation and
  inference (``eval_text: hypothesis``; ``truth`` gives the oracle-text numbers of the paper's
  multimodal rows): ``x^l (B, U, D_l)``.
- Interaction (sec. 2.2): :class:`speechser.nets.cmgi.CrossModalGatedInteraction`, any row of the
  paper's Table 2 (``cmgi.interaction``), -> ``(B, 4 dim)`` (``2 dim`` for the ablation rows).
- Loss: ``L = α L_ASR + (1 − α) L_E`` (eq. 2), ``α = asr_weight`` (0.1 in the paper); ``L_E`` is the
  shared SER head's cross-entropy (eq. 7; with ``supcon_weight`` > 0, the hybrid loss).

- Training phases (sec. 3.2), with ``stage1_epochs`` > 0: phase 1 fine-tunes the SSL model alone for
  SER (a linear classifier on its mean-pooled frames) and ASR, ``L = α L_ASR + (1 − α) CE``; phase 2
  freezes its CNN and trains the SSL transformer, the text encoder and CmGI for SER, the CTC head
  still on the SSL model (eq. 2). The phase follows the epoch (:meth:`CmGISER.set_epoch`), so a resumed
  run is in the right one. ``stage1_epochs: 0`` trains phase 2 only (then ``ssl.freeze_feature_extractor``
  decides about the CNN).

Departures, and why: the shared SER head puts one embedding layer (Linear, LayerNorm, ReLU) between
eq. 7's concatenation and the classifier (it is what the k-NN datastore and the SupCon term read).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from speechser.config import check_choice, check_ranges
from speechser.data.ser_dataset import Batch, lengths_to_mask
from speechser.decode.ctc import ctc_greedy_search
from speechser.losses.ctc import CTC_REDUCTIONS, ctc_loss
from speechser.models.abs_model import AbsSERModel, StagedFreezing
from speechser.models.asr_branch import need_audio
from speechser.nets.cmgi import CmGIConfig, CrossModalGatedInteraction
from speechser.nets.pooling import masked_mean
from speechser.nets.ser_head import SERHead, SERHeadOptions
from speechser.nets.ssl import SSLConfig, SSLEncoder
from speechser.nets.text_encoder import TextEncoder, TextEncoderConfig
from speechser.text.tokenizer import GraphemeTokenizer


@dataclass
class CmGISERConfig(SERHeadOptions):
    ssl: SSLConfig = field(default_factory=SSLConfig)
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    cmgi: CmGIConfig = field(default_factory=CmGIConfig)
    #: α of eq. 2: ``L = α L_ASR + (1 − α) L_E``.
    asr_weight: float = 0.1
    #: How L_ASR is reduced (:mod:`speechser.losses.ctc`): ``token`` (per-token, the scale of L_E, which gives
    #: α its meaning) or ``utterance`` (summed over each utterance's tokens).
    ctc_reduction: str = "token"
    #: What the text encoder reads in training: the transcript (``truth``, the paper) or the CTC hypothesis.
    train_text: str = "truth"
    #: ... and in evaluation and inference: the CTC hypothesis (``hypothesis``, speech only) or ``truth``.
    eval_text: str = "hypothesis"
    #: Epochs of phase 1 (the SSL model alone for SER and ASR); 0 = phase 2 from the start.
    stage1_epochs: int = 0

    def __post_init__(self) -> None:
        check_ranges(self, asr_weight="[0, 1)", stage1_epochs="[0, inf)")
        check_choice(self, train_text=("truth", "hypothesis"), eval_text=("truth", "hypothesis"),
                     ctc_reduction=CTC_REDUCTIONS)
        super().__post_init__()


class CmGISER(StagedFreezing, AbsSERModel):
    def __init__(self, conf: CmGISERConfig, input_dim: int, num_classes: int,
                 class_weights: Optional[List[float]] = None, tokens: Optional[Sequence[str]] = None) -> None:
        super().__init__()  # input_dim: the filterbank's, unused (the model reads the waveform)
        if not tokens:
            raise ValueError("model cmgi_ser recognizes the transcript: set data.load_text: true (the SER task "
                             "then gives it the grapheme tokens of the training text)")
        self.conf = conf
        self.tokenizer = GraphemeTokenizer(list(tokens))
        self.ssl = SSLEncoder(conf.ssl)
        self.ctc = nn.Linear(self.ssl.output_dim, len(tokens))
        self.text = TextEncoder(conf.text)
        self.cmgi = CrossModalGatedInteraction(self.ssl.output_dim, self.text.output_dim, conf.cmgi)
        self.head = SERHead(0, num_classes, conf, "layer", class_weights, extra_dim=self.cmgi.output_dim)
        #: Phase 1's classifier on the mean-pooled SSL frames (paper 001, sec. 3.2).
        self.acoustic_classifier = nn.Linear(self.ssl.output_dim, num_classes) if conf.stage1_epochs else None
        self.stage = 1 if conf.stage1_epochs else 2

    def set_epoch(self, epoch: int) -> None:
        """Phase 1 for epochs ``1 .. stage1_epochs``; phase 2 after, with the SSL model's CNN frozen."""
        self.stage = 1 if epoch <= self.conf.stage1_epochs else 2
        self.set_frozen(self.stage == 2 and self.conf.stage1_epochs > 0)

    def frozen_modules(self) -> List[nn.Module]:
        return self.ssl.lower_modules(0, cnn=True)

    def hypotheses(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> List[str]:
        """CTC greedy hypotheses of log-probabilities ``(B, T, V)``, as text."""
        return [self.tokenizer.decode(h.tokens) for h in ctc_greedy_search(log_probs, lengths)]

    def _texts(self, batch: Batch, log_probs: torch.Tensor, lengths: torch.Tensor) -> List[str]:
        source = self.conf.train_text if self.training else self.conf.eval_text
        if source == "truth":
            if batch.texts is None:
                raise ValueError("cmgi_ser reads the transcripts here (train_text/eval_text: truth): set "
                                 "data.load_text: true")
            return batch.texts
        with torch.no_grad():
            return self.hypotheses(log_probs.detach(), lengths)

    def _encode(self, batch: Batch) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, List[str]]:
        """A batch -> embeddings, CTC log-probabilities, frame counts and the texts the text branch read."""
        need_audio(batch, "cmgi_ser")
        assert batch.wavs is not None and batch.wav_lengths is not None
        xa, alen = self.ssl(batch.wavs, batch.wav_lengths)
        log_probs = F.log_softmax(self.ctc(xa).float(), dim=-1)
        texts = self._texts(batch, log_probs, alen)
        xl, lmask = self.text(texts)
        v = self.cmgi(xa, lengths_to_mask(alen, xa.shape[1]), xl.to(xa.dtype), lmask)
        return self.head.embed_vector(v), log_probs, alen, texts

    def embed_batch(self, batch: Batch) -> torch.Tensor:
        return self._encode(batch)[0]

    def decode_outputs(self, batch: Batch) -> Tuple[torch.Tensor, torch.Tensor, Dict[str, List[Any]]]:
        """Embeddings, logits and the CTC branch's greedy hypotheses (``text``; paper 001 reports their WER)."""
        emb, log_probs, alen, texts = self._encode(batch)
        hyps = texts if self.conf.eval_text == "hypothesis" else self.hypotheses(log_probs, alen)
        return emb, self.head.classify(emb), {"text": hyps}

    def _phase1(self, batch: Batch) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """SSL frames -> (CE of the mean-pooled classifier, its logits, CTC log-probabilities, lengths)."""
        need_audio(batch, "cmgi_ser")
        assert batch.wavs is not None and batch.wav_lengths is not None and self.acoustic_classifier is not None
        xa, alen = self.ssl(batch.wavs, batch.wav_lengths)
        log_probs = F.log_softmax(self.ctc(xa).float(), dim=-1)
        logits = self.acoustic_classifier(masked_mean(xa, lengths_to_mask(alen, xa.shape[1])))
        return self.head.class_loss(logits, batch.labels, batch.soft), logits, log_probs, alen

    def forward(self, batch: Batch) -> Dict[str, Any]:  # type: ignore[override]
        # Validation always scores the network inference uses (SSL + text + CmGI + head): phase-1 epochs
        # then compete for the n-best checkpoints with the UA they would really have, not the phase-1
        # classifier's.
        if self.stage == 1 and self.training:
            loss_e, logits, log_probs, alen = self._phase1(batch)
        else:
            emb, log_probs, alen, _ = self._encode(batch)
            logits = self.head.classify(emb)
            loss_e = self.head.loss(logits, emb, batch.labels, batch.soft)
        out: Dict[str, Any] = {"logits": logits.detach(), "loss": loss_e}
        a = self.conf.asr_weight
        if a > 0:
            if batch.tokens is None or batch.token_lengths is None:
                raise ValueError("cmgi_ser's CTC loss needs the transcripts: set data.load_text: true")
            ctc = ctc_loss(log_probs, batch.tokens, alen, batch.token_lengths, self.conf.ctc_reduction)
            out["loss"] = a * ctc + (1 - a) * loss_e
            out["loss_ctc"] = ctc.detach()
            out["loss_ser"] = loss_e.detach()
        return out
