"""What the metadata-enhanced SER models share (paper 002; ``metadata_tdnn_ser``, ``metadata_ssl_ser``):
auxiliary heads on the encoder's frames, co-attention into the SER head, and the two-stage schedule.

A model mixes :class:`MetadataSERMixin` in before its encoder's SER class and provides
``encoder_frames(batch) -> (x (B, T, D), mask (B, T))`` and ``frozen_modules()`` (what stage 2
freezes); the mixin builds nothing itself: the model's ``__init__`` calls :meth:`MetadataSERMixin.init_metadata` after its encoder.

- :meth:`set_epoch` (called by the trainer before each epoch): stage 1 for epochs
  ``1 .. stage1_epochs`` (auxiliary losses only), stage 2 after (SER loss added, ``frozen_modules()``
  frozen: no gradients, eval mode). Requires-grad flags are not in checkpoints: the stage follows the
  epoch, so a resumed run is in the right stage with the right layers frozen.
- :meth:`forward`: the SER head's input is the pooled frames and, with co-attention, the frames'
  attention over the auxiliary hidden states.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from speechser.models.abs_model import StagedFreezing
from speechser.nets.aux_tasks import ASR_TASK, AuxiliaryTasks, MetadataOptions
from speechser.text.tokenizer import GraphemeTokenizer


class MetadataSERMixin(StagedFreezing):
    conf: Any
    head: Any
    aux: AuxiliaryTasks
    stage: int
    training: bool

    def init_metadata(self, frame_dim: int, aux_classes: Optional[Mapping[str, int]], dropout: float,
                      tokens: Optional[Sequence[str]] = None) -> None:
        self.aux = AuxiliaryTasks(frame_dim, aux_classes or {}, self.conf, dropout, len(tokens or ()))
        self.stage = 1 if self.conf.stage1_epochs > 0 else 2
        #: Decodes the auxiliary ASR task's CTC hypotheses (the transcripts' graphemes), when it has one.
        self.aux_tokenizer = GraphemeTokenizer(list(tokens)) if tokens else None

    @staticmethod
    def extra_head_dim(frame_dim: int, opts: MetadataOptions) -> int:
        return AuxiliaryTasks.co_attention_dim(frame_dim, opts)

    def encoder_frames(self, batch: Any) -> Tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def set_epoch(self, epoch: int) -> None:
        self.stage = 1 if epoch <= self.conf.stage1_epochs else 2
        # stage 1 keeps the config's own freezing (the SSL CNN, say): nothing is unfrozen here
        self.set_frozen(self.stage == 2 and self.conf.stage1_epochs > 0 and self.conf.stage2_freeze > 0)

    def _embed(self, batch: Any) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], torch.Tensor]:
        x, mask = self.encoder_frames(batch)
        co, aux_logits = self.aux(x, mask)
        return self.head.pool_embed(x, mask, co), aux_logits, mask

    def embed_batch(self, batch: Any) -> torch.Tensor:
        return self._embed(batch)[0]

    def decode_outputs(self, batch: Any) -> Tuple[torch.Tensor, torch.Tensor, Dict[str, List[Any]]]:
        """Embeddings, logits and each auxiliary task's predictions: class indices, or for the ASR task the
        CTC greedy hypotheses as text (paper 002's Table III scores them)."""
        from speechser.decode.ctc import ctc_greedy_search

        emb, aux_logits, mask = self._embed(batch)
        preds: Dict[str, List[Any]] = {}
        for name, logits in aux_logits.items():
            if name == ASR_TASK:
                assert self.aux_tokenizer is not None  # the ASR task is built only with tokens
                preds[name] = [self.aux_tokenizer.decode(h.tokens) for h in ctc_greedy_search(logits, mask.sum(1))]
            else:
                preds[name] = logits.argmax(-1).tolist()
        return emb, self.head.classify(emb), preds

    def forward(self, batch: Any) -> Dict[str, Any]:
        emb, aux_logits, mask = self._embed(batch)
        logits = self.head.classify(emb)
        loss_aux, terms = self.aux.loss(aux_logits, batch, mask) if self.aux.names else (None, {})
        out: Dict[str, Any] = {f"loss_{n}": t for n, t in terms.items()}  # each task's term, for the log
        if self.stage == 1:
            assert loss_aux is not None
            loss = loss_aux
        else:
            loss_ser = self.head.loss(logits, emb, batch.labels, batch.soft)
            out["loss_ser"] = loss_ser.detach()
            loss = loss_ser if loss_aux is None else loss_ser + loss_aux
        return {**out, "loss": loss, "logits": logits.detach()}
