"""A pretrained text encoder from transformers (BERT family) over transcripts or ASR hypotheses.

Named by a hub name (``bert-base-uncased``) or a local directory holding the model and its tokenizer
(what ``save_pretrained`` writes); nothing here downloads unless the name is a hub name and the hub
is reachable. Shapes: ``B`` strings -> subword states ``(B, U, D)`` (``[CLS]`` and ``[SEP]`` included)
and their mask ``(B, U)``; an empty string (an empty hypothesis) gives ``[CLS] [SEP]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import torch
from torch import nn

from speechser.config import check_ranges


@dataclass
class TextEncoderConfig:
    #: Hub name (e.g. ``bert-base-uncased``) or a local directory with the model and its tokenizer.
    name_or_path: str = ""
    #: Longer inputs are cut to this many subwords (special tokens included).
    max_tokens: int = 128
    #: Keep the text encoder's weights fixed.
    freeze: bool = False
    #: A learned softmax-weighted average of every layer's output (the embeddings' included) instead of
    #: the last layer's (SAILER's text branch, paper 004).
    weighted_sum: bool = False

    def __post_init__(self) -> None:
        check_ranges(self, max_tokens="[3, inf)")


class TextEncoder(nn.Module):
    def __init__(self, conf: TextEncoderConfig) -> None:
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        if not conf.name_or_path:
            raise ValueError("text.name_or_path is required (a hub name or a local directory)")
        self.conf = conf
        self.tokenizer = AutoTokenizer.from_pretrained(conf.name_or_path, trust_remote_code=False)
        self.model = AutoModel.from_pretrained(conf.name_or_path, trust_remote_code=False)
        self.output_dim = int(self.model.config.hidden_size)
        #: ``max_tokens``, at most the model's positions.
        self.max_tokens = min(conf.max_tokens, int(getattr(self.model.config, "max_position_embeddings", 10**9)))
        if conf.freeze:
            self.model.requires_grad_(False)
        layers = int(self.model.config.num_hidden_layers) + 1
        self.layer_weights = nn.Parameter(torch.zeros(layers)) if conf.weighted_sum else None

    def forward(self, texts: Sequence[str]) -> Tuple[torch.Tensor, torch.Tensor]:
        """``B`` strings -> ``(B, U, D)`` states and a ``(B, U)`` boolean mask (True = a real subword)."""
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_tokens,
                             return_tensors="pt")
        device = next(self.model.parameters()).device
        enc = {k: v.to(device) for k, v in enc.items()}
        if self.layer_weights is None:
            return self.model(**enc).last_hidden_state, enc["attention_mask"].bool()
        states = torch.stack(self.model(**enc, output_hidden_states=True).hidden_states)  # (L + 1, B, U, D)
        w = torch.softmax(self.layer_weights, dim=0).to(states.dtype)
        return (w[:, None, None, None] * states).sum(0), enc["attention_mask"].bool()

    def subwords(self, text: str) -> List[str]:
        return self.tokenizer.tokenize(text)
