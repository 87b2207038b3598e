"""PCQ: SER by progressive channel querying (Wang et al., paper 003).

Registry name ``pcq_ser``. Per utterance, shapes for one 3 s segment at 16 kHz:

- Segments (sec. 3.2): the waveform is cut into ``segment_seconds`` segments, the last zero-padded
  (:func:`speechser.nets.spectrogram.segment_waveforms`); every segment is classified and the utterance
  posterior is the mean of its segments' posteriors (the paper does not give its rule).
- Spectrogram branch: 40 ms Hamming windows, 800-point DFT, first 200 bins -> ``(N, 1, 300, 200)``
  (:class:`speechser.nets.spectrogram.SegmentSpectrogram`) -> MLCNN (:mod:`speechser.nets.mlcnn`, PDC blocks,
  channels 16/32/48/64) -> ``x_1 .. x_4``, ``x_l (N, C_l, 300 / 2^l, 200 / 2^l)``.
- SSL branch (sec. 2.2; WavLM in the paper, any :mod:`speechser.nets.ssl` model here): the last layer's
  output of the segment ``(N, T', D)``, read as a one-channel image ``(N, 1, T', D)`` (time on the first
  axis, like the spectrogram) and adaptively average-pooled to ``x_1``'s size: the query token ``Q_1``;
  ``Q_2``, ``Q_3`` are pooled from ``Q_1`` and ``Q_2`` to ``x_2``'s and ``x_3``'s sizes (sec. 2.4).
- CSQ (:mod:`speechser.nets.csq`): ``z_j = CSQ(f_j, Q_j)``, ``f_j = [x_j, x_{j+1}]``, j = 1, 2, 3 (eq. 6);
  ``Q_4 = x_4 ⊗ Q_1`` (eq. 7, ``Q_1`` pooled to ``x_4``'s size and broadcast over its channels).
- ``y_fusion = Concat(Gap(z_1), Gap(z_2), Gap(z_3), Gap(x_4), Gap(Q_4))`` ``(N, 16 + 32 + 48 + 64 + 64)``
  (eq. 8 prints ``Gap(Q_1)``, a single number; the text says the Gap is applied to ``Q_4``, which we follow)
  -> the shared SER head (embedding layer, classifier: "a classifier comprising multiple linear layers").

Table 4's rows by config: ``block: conv3x3`` (w/o PDC), ``use_csq: false`` (w/o CSQ: ``Gap(x_4), Gap(Q_4)``),
``use_ssl: false`` with ``use_csq: false`` (w/o WavLM: the MLCNN alone, ``Gap(x_4)``). ``use_ssl: false`` with
CSQ on runs the CSQ modules without a query token (not a row of the paper).
The training config needs ``data.load_audio: true``. With ``ssl.cached`` the query tokens come from stage 3's
stored states of the whole utterance (``ssl_frames``), cut into the same segments as the waveform, instead of
the encoder run on each 3-s segment alone: a segment's states then also saw the audio around it (a departure
from the paper, which runs WavLM per segment, for the cost of the encoder once per utterance).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from speechser.config import check_choice, check_ranges
from speechser.data.ser_dataset import Batch, lengths_to_mask
from speechser.models.abs_model import AbsSERModel
from speechser.models.asr_branch import need_audio
from speechser.nets.csq import ChannelSemanticQuery
from speechser.nets.mlcnn import MLCNN
from speechser.nets.ser_head import SERHead, SERHeadOptions
from speechser.nets.spectrogram import (
    SegmentSpectrogram,
    average_segment_posteriors,
    average_segments,
    segment_frames,
    segment_waveforms,
)
from speechser.nets.ssl import SSLConfig, SSLEncoder


@dataclass
class PCQSERConfig(SERHeadOptions):
    ssl: SSLConfig = field(default_factory=SSLConfig)
    #: The SSL branch (its query tokens, ``Q_4``); false = Table 4's "w/o WavLM".
    use_ssl: bool = True
    #: The three CSQ modules; false = Table 4's "w/o CSQ".
    use_csq: bool = True
    #: MLCNN block: ``pdc`` (the paper) or ``conv3x3`` (Table 4's "w/o PDC").
    block: str = "pdc"
    channels: List[int] = field(default_factory=lambda: [16, 32, 48, 64])
    #: CSQ's dilation per channel group (its Group = the number of entries).
    dilations: List[int] = field(default_factory=lambda: [7, 5, 2, 1])
    segment_seconds: float = 3.0
    sample_rate: int = 16000
    window_ms: float = 40.0
    hop_ms: float = 10.0
    n_fft: int = 800
    num_bins: int = 200

    def __post_init__(self) -> None:
        check_choice(self, block=("pdc", "conv3x3"))
        check_ranges(self, segment_seconds="(0, inf)", sample_rate="[1, inf)", window_ms="(0, inf)",
                     hop_ms="(0, inf)", n_fft="[1, inf)", num_bins="[1, inf)")
        super().__post_init__()


class PCQSER(AbsSERModel):
    def __init__(self, conf: PCQSERConfig, input_dim: int, num_classes: int,
                 class_weights: Optional[List[float]] = None) -> None:
        super().__init__()  # input_dim: the filterbank's, unused (the model reads the waveform)
        self.conf = conf
        self.segment = int(round(conf.segment_seconds * conf.sample_rate))
        self.spec = SegmentSpectrogram(conf.sample_rate, conf.window_ms, conf.hop_ms, conf.n_fft, conf.num_bins)
        self.mlcnn = MLCNN(conf.channels, conf.block)
        self.ssl: Optional[SSLEncoder] = SSLEncoder(conf.ssl) if conf.use_ssl else None
        #: A segment's length in the encoder's frames (its stored states are cut to these with ``ssl.cached``).
        self.segment_frames = 0
        if self.ssl is not None:
            self.segment_frames = int(self.ssl.frame_lengths(torch.tensor([self.segment]))[0])
        ch = list(conf.channels)
        self.csq: Optional[nn.ModuleList] = None
        if conf.use_csq:
            self.csq = nn.ModuleList(ChannelSemanticQuery(lo, hi, conf.dilations, use_query=conf.use_ssl)
                                     for lo, hi in zip(ch[:-1], ch[1:]))
        fusion_dim = (sum(ch[:-1]) if conf.use_csq else 0) + ch[-1] + (ch[-1] if conf.use_ssl else 0)
        self.head = SERHead(0, num_classes, conf, "layer", class_weights, extra_dim=fusion_dim)

    def _segment_embeddings(self, batch: Batch) -> Tuple[torch.Tensor, torch.Tensor]:
        """A batch -> segment embeddings ``(N, embed_dim)`` and each segment's utterance index ``(N,)``."""
        need_audio(batch, "pcq_ser")
        assert batch.wavs is not None and batch.wav_lengths is not None
        segs, owner = segment_waveforms(batch.wavs, batch.wav_lengths, self.segment)
        xs = self.mlcnn(self.spec(segs))
        q1: Optional[torch.Tensor] = None
        if self.ssl is not None:
            if self.ssl.conf.cached:  # stage 3's states of the whole utterance, cut like the waveform
                frames, lens = self.ssl.batch_frames(batch, "pcq_ser")
                frames = frames * lengths_to_mask(lens, frames.shape[1]).unsqueeze(-1).to(frames.dtype)
                h = segment_frames(frames, owner, self.segment_frames)
            else:
                full = torch.full((segs.shape[0],), segs.shape[1], device=segs.device, dtype=torch.long)
                h, _ = self.ssl(segs, full)
            q1 = F.adaptive_avg_pool2d(h.unsqueeze(1), xs[0].shape[-2:]).to(xs[0].dtype)
        parts: List[torch.Tensor] = []
        if self.csq is not None:
            q = q1
            for j, csq in enumerate(self.csq):
                if q is not None and j > 0:
                    q = F.adaptive_avg_pool2d(q, xs[j].shape[-2:])
                parts.append(csq(xs[j], xs[j + 1], q).mean(dim=(2, 3)))
        parts.append(xs[-1].mean(dim=(2, 3)))
        if q1 is not None:
            q4 = xs[-1] * F.adaptive_avg_pool2d(q1, xs[-1].shape[-2:])
            parts.append(q4.mean(dim=(2, 3)))
        return self.head.embed_vector(torch.cat(parts, dim=-1)), owner

    def embed_batch(self, batch: Batch) -> torch.Tensor:
        """Utterance embeddings ``(B, embed_dim)``: the mean of the segments' (what the k-NN datastore keeps)."""
        emb, owner = self._segment_embeddings(batch)
        return average_segments(emb, owner, len(batch.keys))

    def utterance_outputs(self, batch: Batch) -> Tuple[torch.Tensor, torch.Tensor]:
        emb, owner = self._segment_embeddings(batch)
        logits = average_segment_posteriors(self.head.classify(emb), owner, len(batch.keys))
        return average_segments(emb, owner, len(batch.keys)), logits

    def forward(self, batch: Batch) -> Dict[str, Any]:  # type: ignore[override]
        """Loss over the segments (each with its utterance's label); logits: the utterances' log mean posteriors."""
        emb, owner = self._segment_embeddings(batch)
        seg_logits = self.head.classify(emb)
        soft = batch.soft[owner] if batch.soft is not None else None
        loss = self.head.loss(seg_logits, emb, batch.labels[owner], soft)
        return {"loss": loss, "logits": average_segment_posteriors(seg_logits.detach(), owner, len(batch.keys))}
