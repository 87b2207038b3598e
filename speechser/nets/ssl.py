"""Self-supervised speech encoders from transformers: wav2vec 2.0, HuBERT, WavLM,
data2vec-audio and the Whisper encoder.

A model is named by a hub name or a local directory (what ``save_pretrained``
writes); nothing here downloads unless the name is a hub name and the hub is
reachable. Shapes: waveforms ``(B, S)`` at 16 kHz with ``lengths (B,)`` in
samples -> frames ``(B, T, D)`` with ``frame_lengths (B,)`` (20 ms frames for
all five families).

The representation is one hidden state (``layer``: 0 is the input to the
first transformer layer, ``L`` the last layer's output, ``-1`` the last), a
learned softmax-weighted sum of all ``L + 1`` (``weighted_sum``), or the last
layer plus a learned residual of the first ``L − 1`` (``ari``, paper 002's
Augmented Residual Integration, :mod:`speechser.nets.ari`). With a fixed
``layer < L`` the layers above it are dropped at load time (they cannot
contribute), which saves their compute and memory: ``layer: 9`` of wav2vec 2.0
base (the VLSP 2025 system's SER features) runs 9 of its 12 layers and returns
exactly the full model's ``hidden_states[9]``.

Whisper is built as its encoder alone, strictly and in float32, and runs on each utterance's own length
unless ``whisper_window: padded`` (:mod:`speechser.nets.whisper_encoder`). With ``cached`` the hidden
states are not computed but read from stage 3's stored ``ssl_frames`` (``(B, T, (L + 1) D)``,
:meth:`SSLEncoder.stored_states`): the encoder's weights are not even loaded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from speechser.nets.whisper_encoder import WINDOWS, WhisperFrames, attention_mask, load_whisper_encoder



@dataclass
class SSLConfig:
    #: Hub name (e.g. ``microsoft/wavlm-base-plus``) or a local directory.
    name_or_path: str = ""
    #: Hidden state to use (0 = input of layer 1, -1 = last); ignored with ``weighted_sum``.
    layer: int = -1
    weighted_sum: bool = False
    #: Augmented Residual Integration: ``h_L + Σ_{l<L} W_l ⊙ h_l`` (paper 002); excludes ``weighted_sum``.
    ari: bool = False
    #: ARI's weights per layer and channel ``(L − 1, D)`` (the paper's "weighted matrix"), else per layer.
    ari_per_channel: bool = True
    freeze_feature_extractor: bool = True
    #: Freeze the first N transformer layers (and, when N > 0, the positional/input embeddings too).
    freeze_layers: int = 0
    #: Freeze the whole SSL model (a fixed feature extractor).
    freeze_all: bool = False
    #: Zero-mean unit-variance waveform normalization; ``auto`` follows the model's feature-extractor config.
    normalize_waveform: str = "auto"
    #: Keys set on the transformers config before loading (e.g. ``{layerdrop: 0.0, mask_time_prob: 0.0}``).
    config_overrides: Dict[str, Any] = field(default_factory=dict)
    #: Whisper only: ``utterance`` (each utterance's own length, the positional table cut to it) or ``padded``
    #: (Whisper's 30-s window, as transformers runs it); see :mod:`speechser.nets.whisper_encoder`.
    whisper_window: str = "utterance"
    #: The hidden states come stored (stage 3's ``ssl_frames`` of this encoder, all ``L + 1`` states side by
    #: side, ``(T, (L + 1) D)``): the encoder is not run and its weights are not loaded (only its config),
    #: so it is frozen by construction; ``layer``, ``weighted_sum`` and ``ari`` combine the stored states.
    cached: bool = False
    #: With ``cached`` (Whisper only): the top N encoder layers (and the final layer norm) are loaded and trained,
    #: re-run on stored state ``L - N``; the states below stay stored. The stored states must be the encoder's
    #: own (``data.cmvn_type: none``): these layers were trained on them.
    train_top_layers: int = 0

    def __post_init__(self) -> None:
        if self.train_top_layers < 0:
            raise ValueError(f"ssl.train_top_layers must be >= 0, got {self.train_top_layers}")
        if self.train_top_layers and not self.cached:
            raise ValueError("ssl.train_top_layers re-runs layers on stored states: set ssl.cached: true (a live "
                             "encoder is fine-tuned with freeze_layers instead)")
        if self.whisper_window not in WINDOWS:
            raise ValueError(f"ssl.whisper_window must be one of {', '.join(WINDOWS)}, got '{self.whisper_window}'")


def _feature_extractor(name_or_path: str) -> Optional[Any]:
    from transformers import AutoFeatureExtractor

    try:
        return AutoFeatureExtractor.from_pretrained(name_or_path, trust_remote_code=False)
    except (OSError, ValueError) as err:
        logging.info("%s: no feature-extractor config (%s); using defaults", name_or_path, str(err).splitlines()[0])
        return None


class SSLEncoder(nn.Module):
    """A pretrained SSL model as a frame encoder (see the module docstring)."""

    def __init__(self, conf: SSLConfig) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoModel

        if not conf.name_or_path:
            raise ValueError("ssl.name_or_path is required (a hub name or a local directory)")
        self.conf = conf
        hf_conf = AutoConfig.from_pretrained(conf.name_or_path, trust_remote_code=False)
        for k, v in conf.config_overrides.items():
            if not hasattr(hf_conf, k):
                raise ValueError(f"ssl.config_overrides: '{k}' is not a key of {type(hf_conf).__name__}")
            setattr(hf_conf, k, v)
        if float(getattr(hf_conf, "layerdrop", 0.0) or 0.0) > 0:
            # LayerDrop skips layers in training, and transformers then returns fewer hidden states: a chosen
            # layer (``layer``) or a combination of layers (``weighted_sum``, ``ari``) would be the wrong one,
            # or out of range. Off, and said so.
            logging.warning("%s: layerdrop %s set to 0 (the encoder reads hidden states by layer index)",
                            conf.name_or_path, hf_conf.layerdrop)
            hf_conf.layerdrop = 0.0
        self.is_whisper = hf_conf.model_type == "whisper"
        self.hf_conf = hf_conf
        fe = None
        self.top: Optional[nn.ModuleList] = None
        if conf.cached:  # frozen by construction: the combination of the stored states still learns
            model = None
            layers = range(int(hf_conf.encoder_layers if self.is_whisper else hf_conf.num_hidden_layers))
            if conf.train_top_layers:
                self._load_top_layers(conf, hf_conf, len(layers))
        elif self.is_whisper:
            # The encoder alone, float32, strictly loaded; run on each utterance's own length or on Whisper's
            # 30-s window (ssl.whisper_window; speechser.nets.whisper_encoder).
            model, _ = load_whisper_encoder(conf.name_or_path, hf_conf)
            self.whisper = WhisperFrames(model, hf_conf, conf.whisper_window)
            layers = model.layers
        else:
            model = AutoModel.from_pretrained(conf.name_or_path, config=hf_conf, trust_remote_code=False)
            fe = _feature_extractor(conf.name_or_path)
            layers = model.encoder.layers
        self.num_layers = len(layers)
        self.output_dim = int(hf_conf.d_model if self.is_whisper else hf_conf.hidden_size)
        # Group-norm feature encoders (wav2vec2/HuBERT/WavLM base) are trained without an attention mask.
        self.use_attention_mask = (not self.is_whisper) and getattr(hf_conf, "feat_extract_norm", "layer") == "layer"
        if conf.normalize_waveform == "auto":
            self.normalize = not self.is_whisper and bool(getattr(fe, "do_normalize", False))
        elif conf.normalize_waveform in ("true", "false"):
            self.normalize = conf.normalize_waveform == "true"
        else:
            raise ValueError("ssl.normalize_waveform must be auto, true or false")

        if conf.weighted_sum and conf.ari:
            raise ValueError("ssl.weighted_sum and ssl.ari are two ways of combining the layers: choose one")
        if conf.ari:
            from speechser.nets.ari import AugmentedResidualIntegration

            self.ari = AugmentedResidualIntegration(self.num_layers, self.output_dim if conf.ari_per_channel else 0)
            self.layer = self.num_layers
        elif conf.weighted_sum:
            self.layer_weights = nn.Parameter(torch.zeros(self.num_layers + 1))
            self.layer = self.num_layers
        else:
            self.layer = conf.layer if conf.layer >= 0 else self.num_layers + 1 + conf.layer
            if not 0 <= self.layer <= self.num_layers:
                raise ValueError(f"ssl.layer {conf.layer} is outside 0..{self.num_layers}")
            if self.layer < self.num_layers and model is not None:
                # Hidden state k (k >= 1) is layer k's output. The wav2vec 2.0 family (wav2vec2, HuBERT,
                # WavLM, data2vec-audio) records it before any final layer norm, so layers 1..k suffice
                # (layer 9 of wav2vec2-base: 9 of 12 layers run). The Whisper encoder normalizes its last
                # state, and state 0 needs a layer to be recorded at all: there keep layers 1..k+1.
                keep = self.layer + 1 if (self.is_whisper or self.layer == 0) else self.layer
                del layers[keep:]
        self.model = model
        self._freeze(conf)

    def _load_top_layers(self, conf: SSLConfig, hf_conf: Any, num_layers: int) -> None:
        """The encoder's top ``conf.train_top_layers`` layers and final layer norm, strictly loaded, trainable."""
        if not self.is_whisper:
            raise ValueError(f"ssl.train_top_layers: {conf.name_or_path} is not a Whisper encoder (only Whisper's "
                             "layers are re-run on stored states)")
        if conf.train_top_layers > num_layers:
            raise ValueError(f"ssl.train_top_layers {conf.train_top_layers}: the encoder has {num_layers} layers")
        encoder, _ = load_whisper_encoder(conf.name_or_path, hf_conf)
        self.top = nn.ModuleList(list(encoder.layers)[num_layers - conf.train_top_layers:])
        self.top_norm = encoder.layer_norm

    def rerun_top(self, states: List[torch.Tensor], lengths: torch.Tensor) -> List[torch.Tensor]:
        """Stored states ``[(B, T, D)] * (L + 1)`` and frame counts ``(B,)`` -> the same with the top layers'
        states recomputed by the trainable layers from state ``L - N`` (the last through the layer norm)."""
        assert self.top is not None
        first = len(states) - 1 - len(self.top)
        x = states[first]
        mask = attention_mask(lengths, x.shape[1], x)
        out = list(states[: first + 1])
        for layer in self.top:
            x = layer(x, mask)
            out.append(x)
        out[-1] = self.top_norm(x)
        return out

    def _freeze(self, conf: SSLConfig) -> None:
        if self.model is None:  # stored states: nothing of the encoder is here to train
            return
        if conf.freeze_all:
            for p in self.model.parameters():
                p.requires_grad_(False)
            return
        for m in self.lower_modules(conf.freeze_layers, cnn=conf.freeze_feature_extractor):
            m.requires_grad_(False)

    def lower_modules(self, n: int, cnn: bool = True) -> List[nn.Module]:
        """The modules below transformer layer ``n + 1``: the CNN feature encoder (with ``cnn``), and when
        ``n > 0`` the input projection and positional embeddings and the first ``n`` transformer layers
        (``freeze_layers: n`` freezes these; the second stage of paper 002 with ``n = 4``). None with stored
        states (``cached``)."""
        if self.model is None:
            return []
        if self.is_whisper:
            convs: List[nn.Module] = [self.model.conv1, self.model.conv2]
            layers, embeds = self.model.layers, [self.model.embed_positions]
        else:
            convs = [self.model.feature_extractor]
            layers = self.model.encoder.layers
            embeds = [m for m in (getattr(self.model, "feature_projection", None),
                                  getattr(self.model.encoder, "pos_conv_embed", None)) if m is not None]
            if not getattr(self.model.config, "do_stable_layer_norm", True):
                # Post-LN (base) models normalize the input of layer 1 (encoder.layer_norm); pre-LN (large)
                # models use it as the final norm, above every layer: frozen only in the first case.
                embeds.append(self.model.encoder.layer_norm)
        return (convs if cnn else []) + (embeds + list(layers)[:n] if n > 0 else [])

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Samples ``(B,)`` -> encoder frames ``(B,)``."""
        if self.is_whisper:
            return WhisperFrames.frame_count(lengths.long().cpu()).to(lengths.device)
        if self.model is None:  # stored states: the convolutional feature encoder's arithmetic, from its config
            n = lengths.long()
            for k, s in zip(self.hf_conf.conv_kernel, self.hf_conf.conv_stride):
                n = torch.div(n - int(k), int(s), rounding_mode="floor") + 1
            return n.clamp(min=0)
        return self.model._get_feat_extract_output_lengths(lengths).long()

    def hidden_states(self, wavs: torch.Tensor, lengths: torch.Tensor) -> Tuple[List[torch.Tensor], torch.Tensor]:
        """Every hidden state the loaded layers give, each ``(B, T, D)`` (``h_0`` the input of layer 1), and
        the frame counts ``(B,)``."""
        if self.model is None:
            raise ValueError(f"ssl.cached: {self.conf.name_or_path} is not loaded (the model reads stage 3's stored "
                             "states, batch.feats); give waveforms to a model with ssl.cached false")
        if self.is_whisper:
            return self.whisper(wavs, lengths)
        mask = torch.arange(wavs.shape[1], device=wavs.device)[None, :] < lengths[:, None]
        x = wavs.float()
        if self.normalize:
            n = lengths.clamp(min=1).to(x.dtype)[:, None]
            mean = (x * mask).sum(1, keepdim=True) / n
            var = (((x - mean) * mask) ** 2).sum(1, keepdim=True) / n
            x = (x - mean) / torch.sqrt(var + 1e-7)
        x = x * mask
        kwargs = {"attention_mask": mask.long()} if self.use_attention_mask else {}
        hidden = self.model(x, output_hidden_states=True, **kwargs).hidden_states
        return list(hidden), self.frame_lengths(lengths).clamp(min=1, max=hidden[0].shape[1])

    def stored_states(self, feats: torch.Tensor) -> List[torch.Tensor]:
        """Stored hidden states ``(B, T, (L + 1) D)`` (stage 3's ``ssl_frames``, every state) -> ``L + 1``
        states ``(B, T, D)``; features of another width (another encoder, or a subset of states) are an
        error naming both widths."""
        want = (self.num_layers + 1) * self.output_dim
        if feats.shape[-1] != want:
            raise ValueError(f"ssl.cached: stored states of width {feats.shape[-1]}, but {self.conf.name_or_path} "
                             f"has {self.num_layers + 1} states of {self.output_dim} ({want}): extract every state "
                             "of this encoder at stage 3 (--feats_type ssl_frames --ssl_layers all)")
        return list(feats.float().split(self.output_dim, dim=-1))

    def batch_frames(self, batch: Any, name: str) -> Tuple[torch.Tensor, torch.Tensor]:
        """A batch -> the representation ``(B, T, D)`` (:meth:`combine`) and frame counts ``(B,)``: from the stored
        states ``batch.feats (B, T, (L + 1) D)`` with ``cached``, else from the encoder run on ``batch.wavs``
        (``name``: the model, for the error a batch without audio gets)."""
        if self.conf.cached:
            states = self.stored_states(batch.feats)
            if self.top is not None:
                states = self.rerun_top(states, batch.lengths)
            return self.combine(states), batch.lengths
        if batch.wavs is None or batch.wav_lengths is None:
            raise ValueError(f"model '{name}' reads audio: set data.load_audio: true in the training config "
                             "(or ssl.cached: true with stage 3's stored states)")
        return self(batch.wavs, batch.wav_lengths)

    def forward(self, wavs: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``wavs (B, S)``, ``lengths (B,)`` samples -> ``(B, T, D)`` frames, ``(B,)`` frame counts."""
        hidden, flen = self.hidden_states(wavs, lengths)
        return self.combine(hidden), flen

    def combine(self, hidden: Sequence[torch.Tensor]) -> torch.Tensor:
        """The representation (one layer, the weighted sum or ARI) of hidden states ``[(B, T, D)] * (L + 1)``."""
        if self.conf.ari:
            return self.ari(hidden)
        if self.conf.weighted_sum:
            w = torch.softmax(self.layer_weights, dim=0)
            return sum(w[i] * hidden[i] for i in range(len(hidden)))
        return hidden[self.layer]
