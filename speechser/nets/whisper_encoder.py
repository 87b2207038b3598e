"""The Whisper encoder alone: loaded without a decoder, in float32, run on an utterance's own length or on
Whisper's 30-s window.

Loading (:func:`load_whisper_encoder`): a local directory with ``config.json`` and ``model.safetensors`` (or
``pytorch_model.bin``, read as tensors only) whose tensors are named ``encoder.*`` (an encoder-only copy,
such as ``../shared/models/whisper-base-encoder``) or ``model.encoder.*`` (a full Whisper checkpoint; its
decoder tensors are not read). Only ``WhisperEncoder`` is built: no decoder is allocated. Every encoder
tensor the config calls for must be in the file and every ``encoder.*`` tensor in the file must be one of
them: anything else is an error naming the tensor, never a silently random encoder. The stored dtype
(float16 as released) is converted to float32; mixed precision stays the trainer's switch. A hub name is
loaded through ``WhisperModel.from_pretrained`` and its encoder kept.

Running (:class:`WhisperFrames`): log-Mel features ``(B, 80, F)`` (Whisper's own: 25 ms windows, 10 ms hop,
``log10``, clamped to 8 below the utterance's maximum, ``(x + 4) / 4``) -> two convolutions (GELU; the
second of stride 2) -> ``T = ceil(F / 2)`` frames of 20 ms, plus the sinusoidal-initialized learned
positions ``0 .. T - 1`` -> the pre-LN Transformer layers -> a final layer norm on the last state.
Hidden states ``h_0`` (input of layer 1) ... ``h_L`` (the normalized last layer), each ``(B, T, D)``.

Windows (``window``):

- ``utterance``: the encoder runs on the utterance's own ``F`` frames, the positional table cut to its
  ``T``; in a batch, padded frames are masked out of attention (an additive ``-inf`` on their keys).
  A 2-s utterance costs 2 s of compute, not 30.
- ``padded``: Whisper's training condition: every input padded with silence to 30 s (3,000 mel frames) and
  attended over whole, as ``transformers``' ``WhisperEncoder`` does; the frames beyond the utterance are
  dropped from the output.

Audio longer than 30 s (1,500 positions) is cut into consecutive 30-s windows (the last one shorter), each
encoded on its own, and their frames concatenated: never truncated.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, List, Optional, Tuple

import numpy as np
import torch
from torch import nn

SAMPLE_RATE = 16000
HOP = 160  # samples per mel frame
N_FFT = 400
WINDOW_SECONDS = 30
WINDOW_SAMPLES = WINDOW_SECONDS * SAMPLE_RATE
WINDOWS = ("utterance", "padded")


class WhisperLoadError(ValueError):
    """A Whisper checkpoint that cannot give a complete encoder; the message names the file and the tensor."""


def _state_dict(path: Path) -> dict:
    weights = path / "model.safetensors"
    if weights.is_file():
        from safetensors.torch import load_file

        return load_file(str(weights))
    weights = path / "pytorch_model.bin"
    if weights.is_file():  # tensors only: a pickled object in it is refused, never run
        return torch.load(weights, map_location="cpu", weights_only=True)
    raise WhisperLoadError(f"{path}: no model.safetensors or pytorch_model.bin (a Whisper model directory?)")


def is_whisper_dir(name_or_path: str) -> bool:
    """True when ``name_or_path`` is a local directory whose ``config.json`` says ``model_type: whisper``."""
    config = Path(name_or_path) / "config.json"
    if not config.is_file():
        return False
    try:
        return json.loads(config.read_text()).get("model_type") == "whisper"
    except ValueError:
        return False


def load_whisper_encoder(name_or_path: str, config: Optional[Any] = None) -> Tuple[nn.Module, Any]:
    """``(encoder, config)``: the float32 ``WhisperEncoder`` of a local directory or a hub name (see the
    module docstring), built from ``config`` when given (the directory's ``config.json`` with overrides);
    :class:`WhisperLoadError` naming a missing or unexpected encoder tensor."""
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    path = Path(name_or_path)
    if not path.is_dir():
        from transformers import WhisperModel

        model = WhisperModel.from_pretrained(name_or_path, config=config, trust_remote_code=False)
        return model.get_encoder().float(), model.config
    if config is None:
        config = WhisperConfig.from_pretrained(str(path), trust_remote_code=False)
    state = _state_dict(path)
    prefix = next((p for p in ("encoder.", "model.encoder.") if any(k.startswith(p) for k in state)), None)
    if prefix is None:
        raise WhisperLoadError(f"{path}: no encoder tensors (encoder.* or model.encoder.*) in its weights")
    mine = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    encoder = WhisperEncoder(config)
    want = set(encoder.state_dict())
    missing, unexpected = sorted(want - set(mine)), sorted(set(mine) - want)
    if missing:
        raise WhisperLoadError(f"{path}: the encoder tensor '{prefix}{missing[0]}' is missing from its weights "
                               f"({len(missing)} missing): a damaged or partial copy; it would be random")
    if unexpected:
        raise WhisperLoadError(f"{path}: '{prefix}{unexpected[0]}' is not a tensor of the encoder its config.json "
                               f"describes ({len(unexpected)} such): weights and config of different models?")
    for k, v in mine.items():
        if tuple(v.shape) != tuple(encoder.state_dict()[k].shape):
            raise WhisperLoadError(f"{path}: '{prefix}{k}' is {tuple(v.shape)}, but the config's encoder has "
                                   f"{tuple(encoder.state_dict()[k].shape)}")
    encoder.load_state_dict({k: v.float() for k, v in mine.items()}, strict=True)
    others = len(state) - len(mine)
    logging.info("%s: Whisper encoder, %d layers x %d, %.1f M parameters (stored %s, run in float32)%s", path,
                 config.encoder_layers, config.d_model, sum(p.numel() for p in encoder.parameters()) / 1e6,
                 str(next(iter(mine.values())).dtype).replace("torch.", ""),
                 f"; {others} decoder tensors not read" if others else "")
    return encoder.float(), config


def attention_mask(frames: torch.Tensor, t: int, x: torch.Tensor) -> Optional[torch.Tensor]:
    """The additive mask ``(B, 1, T, T)`` a Whisper encoder layer takes, hiding each utterance's frames past
    ``frames (B,)`` from attention (None when no utterance is shorter than ``t``); ``x`` gives dtype and device."""
    if int(frames.min()) >= t:
        return None
    keep = torch.arange(t, device=x.device)[None, :] < frames.to(x.device)[:, None]
    mask = torch.zeros(x.shape[0], 1, t, t, dtype=x.dtype, device=x.device)
    return mask.masked_fill(~keep[:, None, None, :], torch.finfo(x.dtype).min)


class WhisperFrames:
    """Hidden states of a Whisper encoder (see the module docstring); not a module of its own, so that the
    encoder's weights belong to whoever owns ``encoder``. ``window``: ``utterance`` or ``padded``. When
    layers have been removed from ``encoder.layers`` the states of those kept are exact, and the final layer
    norm applies to none of them."""

    def __init__(self, encoder: nn.Module, config: Any, window: str = "utterance") -> None:
        if window not in WINDOWS:
            raise ValueError(f"Whisper window '{window}' (one of {', '.join(WINDOWS)})")
        self.encoder, self.window = encoder, window
        self.num_mel_bins = int(config.num_mel_bins)
        self.max_positions = int(config.max_source_positions)
        from transformers import WhisperFeatureExtractor

        self.mel_extractor = WhisperFeatureExtractor(feature_size=self.num_mel_bins)

    @property
    def layers(self) -> nn.ModuleList:
        return self.encoder.layers

    @staticmethod
    def frame_count(samples: torch.Tensor) -> torch.Tensor:
        """Samples ``(B,)`` -> encoder frames ``(B,)``: ``ceil(floor(S / 160) / 2)`` per 30-s window."""
        full, rest = samples // WINDOW_SAMPLES, samples % WINDOW_SAMPLES
        per_window = WINDOW_SAMPLES // HOP // 2
        return full * per_window + (rest // HOP + 1) // 2

    def log_mel(self, wavs: List[np.ndarray], pad_to_window: bool) -> torch.Tensor:
        """Whisper's log-Mel features ``(B, 80, F)`` of float32 waveforms (each normalized on its own)."""
        padding = "max_length" if pad_to_window else "longest"
        out = self.mel_extractor(wavs, sampling_rate=SAMPLE_RATE, return_tensors="pt", padding=padding,
                                 max_length=WINDOW_SAMPLES if pad_to_window else None)
        return out["input_features"]

    def _encode(self, mel: torch.Tensor, mel_frames: torch.Tensor) -> List[torch.Tensor]:
        """``mel (B, 80, F)`` -> hidden states, each ``(B, T, D)``; ``mel_frames (B,)``: each utterance's own
        mel frames. With ``utterance`` windows everything beyond them is zeroed before each convolution (as
        the convolutions' own zero padding is, for the utterance alone) and masked out of attention, so an
        utterance gives the same states alone or in a padded batch."""
        enc = self.encoder
        frames = (mel_frames + 1) // 2
        if self.window == "utterance" and int(mel_frames.min()) < mel.shape[-1]:
            valid = (torch.arange(mel.shape[-1], device=mel.device)[None, :] < mel_frames.to(mel.device)[:, None])
            mel = mel * valid[:, None, :]
            x = nn.functional.gelu(enc.conv1(mel)) * valid[:, None, :]
        else:
            x = nn.functional.gelu(enc.conv1(mel))
        x = nn.functional.gelu(enc.conv2(x)).transpose(1, 2)
        t = x.shape[1]
        x = x + enc.embed_positions.weight[:t].to(x.dtype)
        mask = attention_mask(frames, t, x) if self.window == "utterance" else None
        x = nn.functional.dropout(x, p=float(getattr(enc, "dropout", 0.0)), training=enc.training)
        hidden = [x]
        for layer in enc.layers:
            x = layer(x, mask)
            hidden.append(x)
        if len(enc.layers) == enc.config.encoder_layers:
            hidden[-1] = enc.layer_norm(x)
        return hidden

    def __call__(self, wavs: torch.Tensor, lengths: torch.Tensor) -> Tuple[List[torch.Tensor], torch.Tensor]:
        """``wavs (B, S)`` at 16 kHz, ``lengths (B,)`` samples -> hidden states ``[(B, T, D)] * (L + 1)`` and
        frames ``(B,)``; ``T`` is the longest utterance's frame count."""
        lengths = lengths.long().cpu()
        frames = self.frame_count(lengths)
        n_windows = max(1, math.ceil(int(lengths.max()) / WINDOW_SAMPLES))
        arrays = [w[: int(n)].detach().float().cpu().numpy() for w, n in zip(wavs, lengths)]
        if n_windows == 1:
            pieces = [arrays]
        else:  # consecutive 30-s windows, the last one shorter
            pieces = [[a[i * WINDOW_SAMPLES: (i + 1) * WINDOW_SAMPLES] for a in arrays] for i in range(n_windows)]
        outs: List[Tuple[List[torch.Tensor], torch.Tensor]] = []  # per window: states, each utterance's frames
        for piece in pieces:
            n = torch.tensor([len(a) for a in piece])
            piece = [a if len(a) else np.zeros(HOP * 2, dtype=np.float32) for a in piece]
            mel = self.log_mel(piece, self.window == "padded").to(wavs.device)
            hidden = self._encode(mel, (n // HOP).clamp(min=2))
            t_window = self.frame_count(n)
            outs.append(([h[:, : max(1, int(t_window.max()))] for h in hidden], t_window))
        if len(outs) == 1:
            hidden = outs[0][0]
        else:  # each utterance's windows joined: frames of window i follow those of window i - 1
            hidden = [nn.utils.rnn.pad_sequence(
                [torch.cat([states[i][b, : int(t[b])] for states, t in outs], 0) for b in range(wavs.shape[0])],
                batch_first=True) for i in range(len(outs[0][0]))]
        t = int(frames.max())
        return [h[:, :t] for h in hidden], frames.to(wavs.device)
