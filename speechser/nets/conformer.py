"""Conformer encoder: convolutional subsampling and Conformer blocks with
relative-position multi-head self-attention (Gulati et al., 2020; relative
positions as in Transformer-XL, Dai et al., 2019), with FastConformer's
subsampling and attention options (Rekesh et al., "Fast Conformer with
Linearly Scalable Attention for Efficient Speech Recognition", ASRU 2023).

Shapes: features ``(B, T, D_in)`` and lengths ``(B,)`` -> ``(B, T', d_model)``
and ``(B,)``. ``conformer.subsampling`` sets ``T'``:

- ``conv2d4`` (the Conformer's): two full 3x3 stride-2 convolutions without
  padding, ``T' = ((T - 1) // 2 - 1) // 2`` (10 ms -> 40 ms frames; at least
  7 input frames);
- ``dw_striding8`` (FastConformer's): three 3x3 stride-2 stages padded by 1,
  the first a full convolution ``1 -> C``, the other two depthwise-separable
  (a depthwise 3x3 stride-2 convolution, then a pointwise 1x1), ReLU after
  each, ``C = 256`` channels; each stage maps ``n -> (n - 1) // 2 + 1``, so
  ``T' = ceil(T / 8)`` (80 ms frames);
- ``conv2d8``: the same three stages with full 3x3 convolutions, the
  ablation that separates "8x" from "depthwise-separable".

Every frame-rate-dependent setting follows the encoder instead of assuming
4x: :meth:`ConformerEncoder.output_frames` is what the ASR datasets use to
count an utterance whose tokens outnumber its encoder frames as
unalignable, and BEST-RQ stacks ``factor`` input frames per target.
SpecAugment masks input frames in proportion to each utterance's length,
before subsampling, so it needs no change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple, TypeVar

import torch
from torch import nn

from speechser.config import check_choice, check_ranges

@dataclass
class ConformerConfig:
    d_model: int = 256
    num_layers: int = 12
    num_heads: int = 4
    ffn_dim: int = 1024
    conv_kernel: int = 31
    dropout: float = 0.1
    attention_dropout: float = 0.1
    #: ``conv2d4`` | ``dw_striding8`` | ``conv2d8`` (see the module docstring).
    subsampling: str = "conv2d4"
    #: Channels of the subsampling convolutions; 0 = the published count (``d_model`` for conv2d4,
    #: 256 for the 8x kinds).
    subsampling_channels: int = 0
    #: Limited-context attention: each frame attends to the frames at most this many (subsampled)
    #: frames away; 0 = full attention. FastConformer's long-audio setting is 128.
    attention_context: int = 0
    #: With limited context, the first this many frames of each utterance are global tokens: they
    #: attend to every frame and every frame attends to them (FastConformer adds one).
    global_tokens: int = 0

    def __post_init__(self) -> None:
        check_ranges(self, d_model="[1, inf)", num_layers="[0, inf)", num_heads="[1, inf)", ffn_dim="[1, inf)",
                     conv_kernel="[1, inf)", dropout="[0, 1)", attention_dropout="[0, 1)",
                     subsampling_channels="[0, inf)", attention_context="[0, inf)", global_tokens="[0, inf)")
        check_choice(self, subsampling=tuple(SUBSAMPLING))

    @property
    def subsampling_factor(self) -> int:
        return SUBSAMPLING[self.subsampling].factor


#: Frame counts: a Python int or a tensor of them (the subsampling formulas serve both).
Lengths = TypeVar("Lengths", int, torch.Tensor)


def lengths_mask(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """``(B,)`` -> ``(B, T)`` bool, True on valid frames."""
    return torch.arange(T, device=lengths.device)[None] < lengths[:, None]


class Conv2dSubsampling4(nn.Module):
    """Two 3x3 stride-2 convolutions with ReLU, then a linear map to ``d_model``."""

    factor = 4
    min_frames = 7
    published_channels = 0  # d_model

    def __init__(self, input_dim: int, d_model: int, channels: int = 0) -> None:
        super().__init__()
        c = channels or d_model
        self.conv = nn.Sequential(nn.Conv2d(1, c, 3, 2), nn.ReLU(), nn.Conv2d(c, c, 3, 2), nn.ReLU())
        freq = ((input_dim - 1) // 2 - 1) // 2
        self.out = nn.Linear(c * freq, d_model)

    @staticmethod
    def output_lengths(lengths: Lengths) -> Lengths:
        """``((n - 1) // 2 - 1) // 2``, for an int or a tensor of lengths."""
        return ((lengths - 1) // 2 - 1) // 2

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        x = self.conv(x.unsqueeze(1))  # (B, C, T', F')
        B, C, T, F = x.shape
        x = self.out(x.transpose(1, 2).reshape(B, T, C * F))
        return x, self.output_lengths(lengths).clamp(min=0)


class StridingSubsampling8(nn.Module):
    """8x subsampling in three 3x3 stride-2 stages padded by 1, ReLU after each; the first stage a full
    convolution ``1 -> C``, the other two depthwise-separable (``depthwise=True``, FastConformer's
    ``dw_striding``) or full (the ``conv2d8`` ablation); then a linear map ``C * F' -> d_model``.

    ``(B, T, D_in)`` -> ``(B, ceil(T / 8), d_model)``. Frames past each utterance's length are zeroed
    before every stage, so that an utterance's output does not depend on the padding of its batch
    (a padded 3x3 window at an odd length's last frame would otherwise see the previous stage's
    output on padding, ``ReLU(bias)``, instead of zeros).
    """

    factor = 8
    min_frames = 1
    published_channels = 256
    stages = 3

    def __init__(self, input_dim: int, d_model: int, channels: int = 256, depthwise: bool = True) -> None:
        super().__init__()
        c = channels
        layers = [nn.Conv2d(1, c, 3, 2, 1)]
        for _ in range(self.stages - 1):
            layers.append(nn.Sequential(nn.Conv2d(c, c, 3, 2, 1, groups=c), nn.Conv2d(c, c, 1)) if depthwise
                          else nn.Conv2d(c, c, 3, 2, 1))
        self.convs = nn.ModuleList(layers)
        self.out = nn.Linear(c * self.output_lengths(input_dim), d_model)

    @staticmethod
    def halved(n: Lengths) -> Lengths:
        """What one padded 3x3 stride-2 stage leaves of ``n`` frames (or bins): ``(n - 1) // 2 + 1``; an int
        or a tensor."""
        return (n - 1) // 2 + 1

    @classmethod
    def output_lengths(cls, lengths: Lengths) -> Lengths:
        """``n -> ceil(n / 8)`` (0 stays 0), for an int or a tensor of lengths."""
        for _ in range(cls.stages):
            lengths = cls.halved(lengths)
        return lengths

    @staticmethod
    def _depthwise(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
        """The depthwise convolution; in fp32 on a CPU under autocast, where PyTorch's bf16 depthwise
        kernel is about 3x slower than its fp32 one (measured with torch 2.9 on 2 cores; GPUs keep bf16)."""
        if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            with torch.autocast("cpu", enabled=False):
                return conv(x.float())
        return conv(x)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        x = x.unsqueeze(1)  # (B, 1, T, F)
        lens = lengths
        padded = bool((lengths < x.shape[2]).any())  # a full batch stays full at every stage: no mask needed
        for conv in self.convs:
            if padded:
                x = x * lengths_mask(lens, x.shape[2])[:, None, :, None].to(x.dtype)
            if isinstance(conv, nn.Sequential):  # depthwise, then pointwise
                x = conv[1](self._depthwise(conv[0], x))
            else:
                x = conv(x)
            x = torch.relu(x)
            lens = self.halved(lens)
        B, C, T, F = x.shape
        x = self.out(x.transpose(1, 2).reshape(B, T, C * F))
        return x, lens.clamp(min=0)


#: ``conformer.subsampling`` -> its module class (which gives its ``factor`` and ``published_channels``).
SUBSAMPLING = {"conv2d4": Conv2dSubsampling4, "dw_striding8": StridingSubsampling8, "conv2d8": StridingSubsampling8}


def make_subsampling(input_dim: int, conf: ConformerConfig) -> nn.Module:
    """The subsampling module ``conf.subsampling`` names, with ``conf.subsampling_channels`` (or the
    published channel count)."""
    cls = SUBSAMPLING[conf.subsampling]
    channels = conf.subsampling_channels or cls.published_channels or conf.d_model
    if cls is Conv2dSubsampling4:
        return Conv2dSubsampling4(input_dim, conf.d_model, channels)
    return StridingSubsampling8(input_dim, conf.d_model, channels, depthwise=conf.subsampling == "dw_striding8")


def relative_sinusoids(T: int, d_model: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Sinusoidal embeddings of relative distances ``T-1, T-2, ..., -(T-1)``: ``(2T-1, d_model)``."""
    rel = torch.arange(T - 1, -T, -1, device=device, dtype=torch.float32)
    inv = torch.exp(torch.arange(0, d_model, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    ang = rel[:, None] * inv[None]
    pe = torch.zeros(2 * T - 1, d_model, device=device)
    pe[:, 0::2] = torch.sin(ang)
    pe[:, 1::2] = torch.cos(ang)
    return pe.to(dtype)


class RelPositionSelfAttention(nn.Module):
    """Multi-head self-attention with relative positions:
    ``score(i, j) = (q_i + u) . k_j + (q_i + v) . W_r r_{i-j}``, scaled by ``1/sqrt(d_head)``."""

    def __init__(self, d_model: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        if d_model % num_heads:
            raise ValueError("d_model must be divisible by num_heads")
        self.h, self.dk = num_heads, d_model // num_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.pos = nn.Linear(d_model, d_model, bias=False)
        self.out = nn.Linear(d_model, d_model)
        self.pos_bias_u = nn.Parameter(torch.zeros(num_heads, self.dk))
        self.pos_bias_v = nn.Parameter(torch.zeros(num_heads, self.dk))
        nn.init.xavier_uniform_(self.pos_bias_u)
        nn.init.xavier_uniform_(self.pos_bias_v)
        self.dropout = nn.Dropout(dropout)

    def scores(self, q: torch.Tensor, k: torch.Tensor, pos_emb: torch.Tensor) -> torch.Tensor:
        """Pre-softmax scores ``(B, H, T, T)`` from ``q, k (B, T, H, dk)`` and ``pos_emb (2T-1, D)``."""
        B, T = q.shape[:2]
        p = self.pos(pos_emb).view(-1, self.h, self.dk)  # (2T-1, H, dk)
        ac = torch.einsum("bihd,bjhd->bhij", q + self.pos_bias_u, k)
        bd_full = torch.einsum("bihd,khd->bhik", q + self.pos_bias_v, p)  # (B, H, T, 2T-1)
        i = torch.arange(T, device=q.device)
        idx = (T - 1) - i[:, None] + i[None, :]  # the column of distance i - j
        bd = torch.gather(bd_full, 3, idx.expand(B, self.h, T, T))
        return (ac + bd) / math.sqrt(self.dk)

    def forward(self, x: torch.Tensor, pos_emb: torch.Tensor, mask: torch.Tensor,
                context_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``x (B, T, D)``, ``pos_emb (2T-1, D)``, ``mask (B, T)`` -> ``(B, T, D)``; ``context_mask (T, T)``
        (True where frame ``i`` may attend to frame ``j``) limits the context."""
        B, T, _ = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.h, self.dk).unbind(2)  # each (B, T, H, dk)
        scores = self.scores(q, k, pos_emb)
        key_mask = mask[:, None, None, :]
        if context_mask is not None:
            key_mask = key_mask & context_mask[None, None]
        scores = scores.masked_fill(~key_mask, torch.finfo(scores.dtype).min)
        attn = torch.softmax(scores, dim=-1).masked_fill(~key_mask, 0.0)
        ctx = torch.einsum("bhij,bjhd->bihd", self.dropout(attn), v).reshape(B, T, self.h * self.dk)
        return self.out(ctx)


class ConvModule(nn.Module):
    """Pointwise conv + GLU, depthwise conv (kernel ``k``), batch norm, SiLU, pointwise conv."""

    def __init__(self, d_model: int, kernel: int, dropout: float) -> None:
        super().__init__()
        if kernel % 2 == 0:
            raise ValueError("conv_kernel must be odd")
        self.pw1 = nn.Conv1d(d_model, 2 * d_model, 1)
        self.dw = nn.Conv1d(d_model, d_model, kernel, padding=kernel // 2, groups=d_model)
        self.bn = nn.BatchNorm1d(d_model)
        self.pw2 = nn.Conv1d(d_model, d_model, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(1).to(x.dtype)
        y = nn.functional.glu(self.pw1(x.transpose(1, 2) * m), dim=1)
        y = nn.functional.silu(self.bn(self.dw(y * m)))
        return self.dropout(self.pw2(y)).transpose(1, 2)


class FeedForward(nn.Module):
    def __init__(self, d_model: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(d_model), nn.Linear(d_model, hidden), nn.SiLU(), nn.Dropout(dropout),
            nn.Linear(hidden, d_model), nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConformerBlock(nn.Module):
    """Macaron block: ½ FFN, self-attention, convolution, ½ FFN, layer norm; pre-norm residuals."""

    def __init__(self, conf: ConformerConfig) -> None:
        super().__init__()
        d = conf.d_model
        self.ff1 = FeedForward(d, conf.ffn_dim, conf.dropout)
        self.norm_att = nn.LayerNorm(d)
        self.att = RelPositionSelfAttention(d, conf.num_heads, conf.attention_dropout)
        self.norm_conv = nn.LayerNorm(d)
        self.conv = ConvModule(d, conf.conv_kernel, conf.dropout)
        self.ff2 = FeedForward(d, conf.ffn_dim, conf.dropout)
        self.norm_out = nn.LayerNorm(d)
        self.dropout = nn.Dropout(conf.dropout)

    def forward(self, x: torch.Tensor, pos_emb: torch.Tensor, mask: torch.Tensor,
                context_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = x + 0.5 * self.ff1(x)
        x = x + self.dropout(self.att(self.norm_att(x), pos_emb, mask, context_mask))
        x = x + self.conv(self.norm_conv(x), mask)
        x = x + 0.5 * self.ff2(x)
        return self.norm_out(x)


def limited_context_mask(T: int, context: int, global_tokens: int, device: torch.device) -> Optional[torch.Tensor]:
    """``(T, T)`` bool, True where frame ``i`` may attend to frame ``j``: ``|i - j| <= context``, or either
    of them among the first ``global_tokens`` frames. ``None`` when ``context`` is 0 (full attention).

    This is FastConformer's attention pattern for long audio (limited context with a global token, as in
    Longformer), applied as a mask on the full score matrix: it gives the pattern, not the linear memory of
    a banded kernel."""
    if context <= 0:
        return None
    i = torch.arange(T, device=device)
    allowed = (i[:, None] - i[None, :]).abs() <= context
    if global_tokens > 0:
        g = i < global_tokens
        allowed = allowed | g[:, None] | g[None, :]
    return allowed


class ConformerEncoder(nn.Module):
    """Subsampling + ``num_layers`` Conformer blocks. ``(B, T, D_in)`` -> ``(B, T', d_model)``."""

    def __init__(self, input_dim: int, conf: ConformerConfig) -> None:
        super().__init__()
        self.conf = conf
        self.subsampling = make_subsampling(input_dim, conf)
        self.factor: int = self.subsampling.factor
        self.dropout = nn.Dropout(conf.dropout)
        self.layers = nn.ModuleList(ConformerBlock(conf) for _ in range(conf.num_layers))
        self.output_dim = conf.d_model

    def output_frames(self, num_frames: int) -> int:
        """The number of encoder frames for an input of ``num_frames`` frames (0 when it is too short)."""
        return max(0, int(self.subsampling.output_lengths(num_frames)))

    def forward(
        self, feats: torch.Tensor, lengths: torch.Tensor, num_layers: Optional[int] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        need = self.subsampling.min_frames
        if feats.shape[1] < need or (lengths < need).any():
            bad = min(feats.shape[1], int(lengths.min()))
            raise ValueError(f"an input of {bad} frames is too short for {self.conf.subsampling} subsampling "
                             f"(needs at least {need})")
        x, out_lens = self.subsampling(feats, lengths)
        return self.forward_blocks(self.dropout(x * math.sqrt(self.conf.d_model)), out_lens, num_layers), out_lens

    def forward_blocks(self, x: torch.Tensor, lengths: torch.Tensor, num_layers: Optional[int] = None) -> torch.Tensor:
        """The Conformer blocks alone on subsampled frames: ``(B, T', d_model)`` -> same shape."""
        T = x.shape[1]
        mask = lengths_mask(lengths, T)
        pos = relative_sinusoids(T, self.conf.d_model, x.device, x.dtype)
        context = limited_context_mask(T, self.conf.attention_context, self.conf.global_tokens, x.device)
        for layer in self.layers[: num_layers if num_layers is not None else len(self.layers)]:
            x = layer(x, pos, mask, context)
        return x * mask.unsqueeze(-1).to(x.dtype)
