"""Datasets over Kaldi data directories with extracted features, and their collation."""

from __future__ import annotations

import logging
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

import kaldiio
import numpy as np
import torch
from torch.utils.data import Dataset

from speechser.data.audio_mix import MinorityMixer, cap_center, mix_frames, mix_waveforms, mixed_length
from speechser.data.augment import WaveformAugmentor
from speechser.data.labels import UNKNOWN_LABEL, read_aux_labels, read_utt2label
from speechser.data.soft_labels import (
    SoftLabelConfig,
    annotation_dropout,
    distribution,
    read_attributes,
    read_label_votes,
)
from speechser.features.extract import read_fbank_options
from speechser.features.ssl_feats import SSL_FRAME_SHIFT_MS, SSL_SAMPLE_RATE, read_ssl_options
from speechser.features.fbank import CMVN, compute_fbank
from speechser.io.audio import AudioReader
from speechser.io.datadir import DataDirError, read_entries, read_kv


def read_cmvn(data_dir: Path, cmvn_type: str, stats_path: Optional[Path]) -> Optional[CMVN]:
    """Build the CMVN a dataset applies.

    ``cmvn_type``: ``none``; ``global`` (statistics from ``stats_path``, a
    Kaldi stats matrix file such as a training set's ``cmvn.ark``); or
    ``speaker`` (the directory's ``cmvn.scp``, one statistics matrix per
    speaker, and its ``utt2spk``).
    """
    if cmvn_type == "none":
        return None
    if cmvn_type == "global":
        if stats_path is None:
            raise DataDirError("global CMVN needs a statistics file (data.cmvn_stats)")
        return CMVN({"global": kaldiio.load_mat(str(stats_path))})
    if cmvn_type == "speaker":
        scp = data_dir / "cmvn.scp"
        if not scp.is_file():
            raise DataDirError(f"{scp}: no such file (per-speaker CMVN statistics; see compute-cmvn)")
        stats = {spk: np.asarray(mat) for spk, mat in kaldiio.load_scp(str(scp)).items()}
        return CMVN(stats, utt2spk=read_kv(data_dir / "utt2spk"))
    raise ValueError(f"unknown cmvn_type '{cmvn_type}' (none, global, speaker)")



class FeatsScp:
    """Random access to a ``feats.scp`` (kaldiio) whose read errors name the ``scp``, its line, the
    utterance and the archive: an archive that does not exist is found when the ``scp`` is opened,
    an unreadable one when the utterance is read; both are a :class:`DataDirError`."""

    def __init__(self, scp: Path | str) -> None:
        self.scp = Path(scp)
        self.entries = {e.key: e for e in read_entries(self.scp)}
        checked: Dict[str, bool] = {}
        for e in self.entries.values():
            ark = self.archive(e.value)
            if ark is None:
                continue
            if ark not in checked:
                checked[ark] = Path(ark).is_file()
            if not checked[ark]:
                raise DataDirError(f"{self.scp}:{e.lineno}: utterance '{e.key}': feature archive '{ark}' "
                                   "does not exist (re-run the feature stage)")
        self._reader = kaldiio.load_scp(str(self.scp))

    @staticmethod
    def archive(value: str) -> Optional[str]:
        """The archive file of an ``scp`` value (``path.ark:offset`` or ``path``); None for a pipe."""
        value = value.strip()
        if value.endswith("|"):
            return None
        if value.endswith("]") and "[" in value:  # kaldiio's "path.ark:offset[slice]"
            value = value[: value.rindex("[")]
        head, sep, tail = value.rpartition(":")
        return head if sep and tail.isdigit() else value

    def __getitem__(self, key: str) -> np.ndarray:
        e = self.entries.get(key)
        if e is None:
            raise DataDirError(f"{self.scp}: no entry for utterance '{key}'")
        try:
            return self._reader[key]
        except FileNotFoundError:
            raise DataDirError(f"{self.scp}:{e.lineno}: utterance '{key}': feature archive "
                               f"'{self.archive(e.value)}' does not exist (re-run the feature stage)") from None
        except Exception as err:  # kaldiio raises anything from AssertionError to struct.error
            raise DataDirError(f"{self.scp}:{e.lineno}: utterance '{key}': cannot read features "
                               f"'{e.value}': {type(err).__name__}: {err}") from None

class AugmentedFbank:
    """Training features computed on the fly from augmented audio.

    ``source(key) -> (wav (S',) float32, feats (T', D) float32)``: the utterance's
    waveform from the directory's ``wav.scp`` (:class:`AudioReader`, resampled to the
    features' rate), augmented (``augment(wav, rate, key)``; see
    :mod:`speechser.data.augment`), then log-Mel filterbanks with exactly the settings
    the directory's precomputed ``feats.scp`` was extracted with
    (:func:`~speechser.features.extract.read_fbank_options`). Without augmentation
    (all probabilities 0) ``feats`` equals the precomputed matrix up to float rounding.
    Normalization (CMVN) is the caller's. ``T'`` differs from ``utt2num_frames`` under
    speed perturbation (by the factor), which bucketing ignores.
    """

    def __init__(self, data_dir: Path | str, augment: WaveformAugmentor) -> None:
        self.data_dir = Path(data_dir)
        if not (self.data_dir / "wav.scp").is_file():
            raise DataDirError(f"{self.data_dir}/wav.scp: no such file (on-the-fly augmentation reads the audio)")
        self.opts = read_fbank_options(self.data_dir)
        self.audio = AudioReader(self.data_dir, target_rate=self.opts.sample_rate)
        self.augment = augment

    def set_epoch(self, epoch: int) -> None:
        self.augment.set_epoch(epoch)

    def __call__(self, key: str) -> Tuple[np.ndarray, np.ndarray]:
        samples, rate = self.audio[key]
        wav = self.augment(samples, rate, key)
        feats = compute_fbank(wav, rate, self.opts)
        if feats.shape[0] == 0:
            raise ValueError(f"utterance '{key}': too short for a single frame after augmentation")
        return wav, feats


class FeatsLabelDataset(Dataset):
    """Utterance features with a class label, from a data directory.

    Reads ``feats.scp`` (kaldiio), ``utt2num_frames`` (for bucketing) and the
    label file ``label_file`` (e.g. ``utt2emo``) mapped through ``labels``.
    Item ``i`` is ``{"key", "feats": (T, D) float32, "label": int}``.
    ``crop_frames > 0`` takes a random window of at most that many frames
    (training); the generator is torch's, so crops are reproducible.

    ``augment`` (training sets only): each item's waveform is read from
    ``wav.scp`` and augmented, and its features are recomputed from the augmented
    waveform (:class:`AugmentedFbank`), so that a model reading both (``wav`` and
    ``feats``) sees the same augmented audio; nothing is preloaded then.

    ``skip_file`` (training sets only, ``train``): a file of the data directory listing utterance ids,
    one a line (e.g. ``no_consensus``); those utterances are left out of the set before anything else
    is read (keys, lengths, labels and soft labels stay aligned), and their count is logged. Validation
    and test sets are not filtered (the MSP-Podcast recipe's ``no_consensus`` utterances, consensus O/X,
    are all in its Train split: its other splits keep no O/X utterance).
    """

    def __init__(
        self,
        data_dir: Path | str,
        labels: Sequence[str],
        label_file: str = "utt2emo",
        cmvn: Optional[CMVN] = None,
        crop_frames: int = 0,
        preload: bool = True,
        load_audio: bool = False,
        augment: Optional[WaveformAugmentor] = None,
        aux_labels: Optional[Mapping[str, Sequence[str]]] = None,
        tokenizer: Optional[Any] = None,
        soft_labels: Optional[SoftLabelConfig] = None,
        train: bool = False,
        seed: int = 0,
        vectors: Optional[Any] = None,
        require_labels: bool = True,
        skip_file: str = "",
    ) -> None:
        self.data_dir = Path(data_dir)
        scp = self.data_dir / "feats.scp"
        if not scp.is_file():
            raise DataDirError(f"{scp}: no such file (run the feature stage first)")
        self._reader = FeatsScp(scp)
        self.keys: List[str] = list(self._reader.entries)
        #: The utterances of ``skip_file`` left out of this (training) set; every table below is cut to
        #: ``self.keys`` or has them removed.
        self.skipped: FrozenSet[str] = frozenset()
        if train and skip_file:
            self._skip(skip_file)
        #: Unlabelled inference (``require_labels`` False and no ``label_file``): every label is
        #: :data:`UNKNOWN_LABEL`, and only posteriors and hypotheses can be written.
        self.labelled = require_labels or (self.data_dir / label_file).is_file()
        self.utt2label = self._without_skipped(read_utt2label(self.data_dir / label_file, list(labels))) \
            if self.labelled else {k: UNKNOWN_LABEL for k in self.keys}
        missing = [k for k in self.keys if k not in self.utt2label]
        if missing:
            raise DataDirError(f"{self.data_dir}/{label_file}: no label for utterance '{missing[0]}'")
        #: Auxiliary tasks: label file (``utt2gender``...) -> utterance -> class index (UNKNOWN_LABEL outside
        #: the task's classes).
        self.aux: Dict[str, Dict[str, int]] = {}
        for name, classes in (aux_labels or {}).items():
            path = self.data_dir / name
            if not path.is_file():
                raise DataDirError(f"{path}: no such file (an auxiliary task of the model reads it)")
            table = self._without_skipped(read_aux_labels(path, list(classes)))
            lost = [k for k in self.keys if k not in table]
            if lost:
                raise DataDirError(f"{path}: no label for utterance '{lost[0]}'")
            self.aux[name] = table
        #: With a tokenizer (models that read or recognize the transcript): utterance -> normalized text.
        self.tokenizer = tokenizer
        self.texts: Dict[str, str] = {}
        if tokenizer is not None:
            path = self.data_dir / "text"
            if not path.is_file():
                raise DataDirError(f"{path}: no such file (the model reads the transcripts)")
            table = read_kv(path, allow_empty_value=True)
            lost = [k for k in self.keys if k not in table]
            if lost:
                raise DataDirError(f"{path}: no transcript for utterance '{lost[0]}'")
            self.texts = {k: tokenizer.normalize(table[k]) for k in self.keys}
        #: Utterance-level vectors beside the frames (early fusion, ``data.vector_dir``): a
        #: :class:`speechser.data.utt_vectors.UttVectors`; item ``"vector"`` ``(F,)``.
        self.vectors = vectors
        if vectors is not None:
            vectors.check_keys(self.keys, self.data_dir)
        self.lengths = self._read_lengths()
        self.cmvn = cmvn
        self.crop_frames = crop_frames
        self.audio: Optional[AudioReader] = None
        self.load_audio = load_audio
        self.augmented: Optional[AugmentedFbank] = None
        if augment is not None:
            self.augmented = AugmentedFbank(self.data_dir, augment)
            if load_audio and self.augmented.opts.sample_rate != 16000:
                raise ValueError(f"{self.data_dir}: features at {self.augmented.opts.sample_rate} Hz; models that "
                                 "read audio take 16 kHz")
            preload = False
        if load_audio:
            if crop_frames:
                raise ValueError("crop_frames cannot be combined with load_audio (the crop would not match the audio)")
            if not (self.data_dir / "wav.scp").is_file():
                raise DataDirError(f"{self.data_dir}/wav.scp: no such file (the model reads audio)")
            if self.augmented is None:  # else the audio comes augmented, with the features
                self.audio = AudioReader(self.data_dir, target_rate=16000)
        self._init_soft_labels(soft_labels, list(labels), train, seed)
        self._cache: Dict[str, np.ndarray] = {}
        if preload:
            for k in self.keys:
                self._cache[k] = self._read(k)
        logging.info("%s: %d utterances, %d frames", self.data_dir, len(self.keys), sum(self.lengths))

    def _skip(self, skip_file: str) -> None:
        """Leave the utterances listed in ``<data_dir>/<skip_file>`` out of ``self.keys`` (a training set's
        ``data.skip_file``); logged with their count. Ids the set lacks are ignored (a fold's training part
        holds only part of a list carried from the whole corpus)."""
        path = self.data_dir / skip_file
        if not path.is_file():
            raise DataDirError(f"{path}: no such file (data.skip_file '{skip_file}': the list of utterances to "
                               f"leave out of the training set {self.data_dir}; the data preparation writes it, "
                               f"e.g. the MSP-Podcast recipe's no_consensus: rerun the recipe from stage 1, or "
                               f"set data.skip_file to \"\" to train on every utterance)")
        listed = {e.key for e in read_entries(path, allow_empty_value=True)}
        kept = [k for k in self.keys if k not in listed]
        self.skipped = frozenset(k for k in self.keys if k in listed)
        logging.info("%s: %d utterance(s) of %s left out (data.skip_file)", self.data_dir, len(self.skipped), path)
        if not kept:
            raise DataDirError(f"{path}: lists every utterance of {self.data_dir} (data.skip_file): no training "
                               f"utterance left")
        self.keys = kept

    def _without_skipped(self, table: Dict[str, Any]) -> Dict[str, Any]:
        """``table`` without the utterances ``skip_file`` left out (it is returned as is when there are none)."""
        return {k: v for k, v in table.items() if k not in self.skipped} if self.skipped else table

    def _init_soft_labels(self, conf: Optional[SoftLabelConfig], labels: List[str], train: bool, seed: int
                          ) -> None:
        """Soft labels (``conf.file``) and, for a training set, annotation dropout and audio mixing."""
        self.votes: Optional[Dict[str, np.ndarray]] = None
        self.secondary: Optional[Dict[str, np.ndarray]] = None
        self.attributes: Optional[Dict[str, np.ndarray]] = None
        self.num_labels = len(labels)
        self.soft_conf = conf
        if conf is not None and conf.secondary_file and (self.data_dir / conf.secondary_file).is_file():
            self.secondary = self._without_skipped(read_label_votes(self.data_dir / conf.secondary_file, labels))
        if conf is not None and conf.attribute_file and (self.data_dir / conf.attribute_file).is_file():
            self.attributes = self._without_skipped(read_attributes(self.data_dir / conf.attribute_file))
            lost = [k for k in self.keys if k not in self.attributes]
            if lost:
                raise DataDirError(f"{self.data_dir / conf.attribute_file}: no entry for utterance '{lost[0]}'")
        self.mixer: Optional[MinorityMixer] = None
        self.epoch, self.seed = 0, int(seed) % (1 << 32)
        self.train = train
        if conf is None or not conf.file:
            return
        path = self.data_dir / conf.file
        if not path.is_file():
            if train:
                raise DataDirError(f"{path}: no such file (data.soft_labels.file: the training set's soft labels)")
            logging.info("%s: no %s; hard labels only for this set", self.data_dir, conf.file)
            return
        votes = self._without_skipped(read_label_votes(path, labels))
        lost = [k for k in self.keys if k not in votes]
        if lost:
            raise DataDirError(f"{path}: no entry for utterance '{lost[0]}'")
        self.votes = votes
        unknown = [c for c in conf.majority if c not in labels]
        if unknown:
            raise ValueError(f"data.soft_labels.majority: '{unknown[0]}' is not in the label list ({' '.join(labels)})")
        self.majority = np.array([label in conf.majority for label in labels])
        if train and conf.mix_prob > 0:
            #: Stored encoder states (ssl_frames) are mixed as states (audio_mix.mix_frames), else the audio is
            #: mixed and its filterbank computed.
            ssl_opts = read_ssl_options(self.data_dir)
            self.mix_states = ssl_opts is not None
            if ssl_opts is not None and ssl_opts.get("level") != "frames":
                raise ValueError(f"{self.data_dir}/feats.scp: audio mixing joins frames, but these are "
                                 f"'{ssl_opts.get('level')}' (one vector per utterance): use ssl_frames features")
            rate, frame_ms = SSL_SAMPLE_RATE, SSL_FRAME_SHIFT_MS
            if not self.mix_states:
                self.fbank_opts = read_fbank_options(self.data_dir)
                rate, frame_ms = self.fbank_opts.sample_rate, self.fbank_opts.frame_shift_ms
            self.mix_frame_samples = rate * frame_ms / 1000
            #: Frames a join of two filterbanks' audio gains over their sum: the edges' windows (2 for 25 / 10 ms).
            self.mix_edge_frames = 0 if self.mix_states else \
                max(0, math.ceil(self.fbank_opts.frame_length_ms / self.fbank_opts.frame_shift_ms) - 1)
            if self.load_audio or not self.mix_states:
                if not (self.data_dir / "wav.scp").is_file():
                    raise DataDirError(f"{self.data_dir}/wav.scp: no such file (audio mixing reads the audio)")
                self.mix_audio = AudioReader(self.data_dir, target_rate=rate)
            self.mixer = MinorityMixer([self.utt2label[k] for k in self.keys],
                                       [i for i, m in enumerate(self.majority) if m], len(labels), conf.mix_prob,
                                       conf.mix_max_seconds, rate, seed)
            self.mix_cap_samples = int(round(conf.mix_cap_seconds * rate))
            self.mix_cap_frames = int(round(conf.mix_cap_seconds * 1000 / frame_ms))

    def _soft(self, key: str) -> np.ndarray:
        """The utterance's label distribution (after annotation dropout in training)."""
        assert self.votes is not None and self.soft_conf is not None
        votes = self.votes[key]
        if self.train and self.soft_conf.annotation_dropout > 0:
            rng = np.random.default_rng([self.seed, self.epoch, zlib.crc32(key.encode("utf-8")), 11])
            votes = annotation_dropout(votes, self.majority, self.soft_conf.annotation_dropout, rng)
        return distribution(votes)

    def _waveform(self, key: str) -> np.ndarray:
        if self.augmented is not None:
            return self.augmented(key)[0]
        return self.mix_audio[key][0]

    def _mixed(self, i: int, key: str) -> Optional[Tuple[np.ndarray, np.ndarray, np.ndarray, List[str]]]:
        """Audio mixing (training): ``(wav, feats, soft, keys in mixing order)`` of the mixture, or None."""
        draw = self.mixer.draw(i, key) if self.mixer is not None else None
        if draw is None:
            return None
        other = self.keys[draw.partner]
        first, second = (other, key) if draw.partner_first else (key, other)
        wav: Optional[np.ndarray] = None
        if not self.mix_states or self.load_audio:
            wav = cap_center(mix_waveforms(self._waveform(first), self._waveform(second), draw.gap),
                             self.mix_cap_samples)
        if self.mix_states:  # each utterance's states, normalized by its own speaker's statistics
            gap = int(round(draw.gap / self.mix_frame_samples))
            feats = cap_center(mix_frames(self._read(first), self._read(second), gap), self.mix_cap_frames)
        else:
            assert wav is not None
            feats = compute_fbank(wav, self.fbank_opts.sample_rate, self.fbank_opts)
            if self.cmvn is not None:
                feats = self.cmvn(key, feats)  # the majority utterance's speaker statistics
        return wav, feats, (self._soft(key) + self._soft(other)) / 2, [first, second]

    @property
    def varying_lengths(self) -> bool:
        """Whether an item's length changes with the epoch (audio mixing): the sampler then rebuilds its
        batches from :meth:`epoch_lengths` each epoch."""
        return self.mixer is not None

    def epoch_lengths(self, epoch: int) -> List[int]:
        """Each item's length in frames in ``epoch``: a mixture's is its mixed (and capped) length, for the
        batch budget (:class:`speechser.data.sampler.BucketBatchSampler` rebuilds its batches each epoch)."""
        if self.mixer is None:
            return list(self.lengths)
        out = []
        for i, (key, n) in enumerate(zip(self.keys, self.lengths)):
            draw = self.mixer.draw(i, key, epoch)
            if draw is not None:
                n = mixed_length(n, self.lengths[draw.partner], int(round(draw.gap / self.mix_frame_samples)))
                n += self.mix_edge_frames
                n = min(n, self.mix_cap_frames) if self.mix_cap_frames > 0 else n
            out.append(n)
        return out

    def _secondary(self, keys: Sequence[str]) -> np.ndarray:
        """The mean secondary-emotion distribution of ``keys`` that have one (zeros when none has)."""
        assert self.secondary is not None
        dists = [distribution(self.secondary[k]) for k in keys if k in self.secondary]
        return np.mean(dists, axis=0).astype(np.float32) if dists else np.zeros(self.num_labels, np.float32)

    def _read_lengths(self) -> List[int]:
        path = self.data_dir / "utt2num_frames"
        if not path.is_file():
            raise DataDirError(f"{path}: no such file (written by the feature stage)")
        table = read_kv(path)
        try:
            return [int(table[k]) for k in self.keys]
        except KeyError as err:
            raise DataDirError(f"{path}: no entry for utterance {err}") from None

    def _read(self, key: str) -> np.ndarray:
        feats = np.array(self._reader[key], dtype=np.float32)  # a writable copy
        if self.cmvn is not None:
            feats = self.cmvn(key, feats)
        return feats

    def __len__(self) -> int:
        return len(self.keys)

    def set_epoch(self, epoch: int) -> None:
        """The epoch seeds the augmentation, annotation-dropout and mixing draws."""
        self.epoch = int(epoch)
        if self.augmented is not None:
            self.augmented.set_epoch(epoch)
        if self.mixer is not None:
            self.mixer.set_epoch(epoch)

    def __getitem__(self, i: int) -> Dict[str, object]:
        key = self.keys[i]
        wav: Optional[np.ndarray] = None
        soft: Optional[np.ndarray] = None
        parts = [key]  # the utterances in the item: two for a mixture (their other targets are averaged)
        mixed = self._mixed(i, key)
        if mixed is not None:
            wav, feats, soft, parts = mixed
        elif self.augmented is not None:
            wav, feats = self.augmented(key)
            if self.cmvn is not None:
                feats = self.cmvn(key, feats)
        else:
            feats = self._cache[key] if key in self._cache else self._read(key)
        if soft is None and self.votes is not None:
            soft = self._soft(key)
        if self.crop_frames > 0 and feats.shape[0] > self.crop_frames:
            start = int(torch.randint(0, feats.shape[0] - self.crop_frames + 1, (1,)).item())
            feats = feats[start : start + self.crop_frames]
        item: Dict[str, object] = {"key": key, "feats": feats, "label": self.utt2label[key]}
        if soft is not None:
            item["soft"] = soft
        if self.secondary is not None:
            item["soft2"] = self._secondary(parts)
        if self.attributes is not None:
            item["attrs"] = np.mean([self.attributes[k] for k in parts], axis=0).astype(np.float32)
        if self.vectors is not None:  # a mixture keeps the majority utterance's vector, like its metadata
            item["vector"] = self.vectors[key]
        if self.aux:  # a mixture keeps the majority utterance's metadata (gender, speaker...)
            item["aux"] = {name: table[key] for name, table in self.aux.items()}
        if self.tokenizer is not None:  # a mixture's transcript: both, in the mixing order
            text = " ".join(self.texts[k] for k in parts if self.texts[k])
            item["text"] = text
            item["tokens"] = self.tokenizer.encode(text)
        if self.load_audio:
            item["wav"] = wav if wav is not None else self.audio[key][0]  # type: ignore[index]
        return item


@dataclass
class Batch:
    """A padded batch: ``feats (B, T, D)``, ``lengths (B,)``, ``labels (B,)``, ``keys``; with audio
    loaded also ``wavs (B, S)`` (16 kHz, zero-padded) and ``wav_lengths (B,)`` in samples; with auxiliary
    tasks ``aux``: label file -> class indices ``(B,)`` (-100 where unknown); with transcripts ``texts``
    (normalized strings), ``tokens (B, L)`` (zero-padded token ids) and ``token_lengths (B,)``."""

    keys: List[str]
    feats: torch.Tensor
    lengths: torch.Tensor
    labels: torch.Tensor
    wavs: Optional[torch.Tensor] = None
    wav_lengths: Optional[torch.Tensor] = None
    aux: Dict[str, torch.Tensor] = field(default_factory=dict)
    texts: Optional[List[str]] = None
    tokens: Optional[torch.Tensor] = None
    token_lengths: Optional[torch.Tensor] = None
    #: Soft labels (``data.soft_labels``): each utterance's label distribution ``(B, C)``.
    soft: Optional[torch.Tensor] = None
    #: Multi-task targets: secondary-emotion distributions ``(B, C)`` (all zero where an utterance has
    #: none) and emotion attributes ``(B, 3)``.
    soft2: Optional[torch.Tensor] = None
    attrs: Optional[torch.Tensor] = None
    #: Utterance-level vectors ``(B, F)`` (``data.vector_dir``: early fusion of functionals).
    vectors: Optional[torch.Tensor] = None

    def to(self, device: torch.device | str) -> "Batch":
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return Batch(self.keys, move(self.feats), move(self.lengths), move(self.labels), move(self.wavs),
                     move(self.wav_lengths), {k: move(v) for k, v in self.aux.items()}, self.texts,
                     move(self.tokens), move(self.token_lengths), move(self.soft), move(self.soft2),
                     move(self.attrs), move(self.vectors))

    def __len__(self) -> int:
        return len(self.keys)


def collate_feats_labels(items: Sequence[Dict[str, object]]) -> Batch:
    """Pad ``(T_i, D)`` features with zeros to ``(B, T_max, D)``."""
    feats = [torch.from_numpy(np.asarray(it["feats"])) for it in items]
    lengths = torch.tensor([f.shape[0] for f in feats], dtype=torch.long)
    padded = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
    labels = torch.tensor([int(it["label"]) for it in items], dtype=torch.long)  # type: ignore[call-overload]
    wavs = wav_lengths = None
    if "wav" in items[0]:
        w = [torch.from_numpy(np.asarray(it["wav"], dtype=np.float32)) for it in items]
        wav_lengths = torch.tensor([x.shape[0] for x in w], dtype=torch.long)
        wavs = torch.nn.utils.rnn.pad_sequence(w, batch_first=True)
    aux: Dict[str, torch.Tensor] = {}
    if "aux" in items[0]:
        aux = {name: torch.tensor([int(it["aux"][name]) for it in items], dtype=torch.long)  # type: ignore[index]
               for name in items[0]["aux"]}  # type: ignore[union-attr]
    texts = tokens = token_lengths = None
    if "text" in items[0]:
        texts = [str(it["text"]) for it in items]
        seqs = [torch.tensor(it["tokens"], dtype=torch.long) for it in items]  # type: ignore[arg-type]
        token_lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
        tokens = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True) if max(len(s) for s in seqs) else \
            torch.zeros(len(seqs), 0, dtype=torch.long)
    def stacked(name: str) -> Optional[torch.Tensor]:
        if name not in items[0]:
            return None
        return torch.from_numpy(np.stack([np.asarray(it[name], dtype=np.float32) for it in items]))

    return Batch([str(it["key"]) for it in items], padded, lengths, labels, wavs, wav_lengths, aux, texts, tokens,
                 token_lengths, stacked("soft"), stacked("soft2"), stacked("attrs"), stacked("vector"))


def lengths_to_mask(lengths: torch.Tensor, max_len: Optional[int] = None) -> torch.Tensor:
    """``(B,)`` -> boolean mask ``(B, T)``, True on valid frames."""
    T = int(max_len if max_len is not None else lengths.max().item())
    return torch.arange(T, device=lengths.device)[None, :] < lengths[:, None]
