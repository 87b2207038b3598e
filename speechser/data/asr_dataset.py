"""Features with token sequences (ASR), from a data directory with ``feats.scp`` and ``text``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from speechser.data.augment import WaveformAugmentor
from speechser.data.ser_dataset import AugmentedFbank, FeatsScp
from speechser.features.fbank import CMVN
from speechser.io.datadir import DataDirError, read_entries, read_kv
from speechser.text.tokenizer import Tokenizer


class FeatsTextDataset(Dataset):
    """Item ``i``: ``{"key", "feats": (T, D) float32, "tokens": List[int], "text": str}``.

    An utterance whose transcript encodes to no tokens is an error naming
    ``text`` and its line (an empty target cannot be trained on).  One whose
    tokens outnumber its encoder frames, ``encoder_frames(n)`` for ``n`` input
    frames (the model's subsampling, e.g.
    :meth:`speechser.models.conformer_transducer.ConformerTransducer.output_frames`; CTC and
    RNN-T would have no valid alignment), is handled by ``unalignable``:

    - ``"skip"`` (training): left out, logged, and counted in ``self.skipped``;
    - ``"keep"`` (decoding and scoring): kept, so that every utterance of a
      test set is decoded and scored; the model simply cannot get it right;
    - ``"error"``: a :class:`DataDirError` naming ``text`` and its line.

    ``augment`` (training sets only): features are computed on the fly from the
    augmented waveform of the directory's ``wav.scp`` with the front-end settings
    the precomputed features were extracted with (:class:`AugmentedFbank`), then
    normalized by the same ``cmvn``. ``lengths`` (bucketing, and the alignability
    check above) stay those of ``utt2num_frames``: under speed perturbation the
    real frame count differs by the factor (e.g. +11 % at 0.9), so a batch may
    exceed ``max_frames`` by as much, and an utterance sped up past alignability
    costs CTC nothing (the loss uses ``zero_infinity``).
    """

    def __init__(
        self,
        data_dir: Path | str,
        tokenizer: Tokenizer,
        cmvn: Optional[CMVN] = None,
        encoder_frames: Optional[Callable[[int], int]] = None,
        unalignable: str = "error",
        augment: Optional[WaveformAugmentor] = None,
    ) -> None:
        if unalignable not in ("skip", "keep", "error"):
            raise ValueError(f"unalignable must be skip, keep or error, not '{unalignable}'")
        if encoder_frames is None and unalignable != "keep":
            raise ValueError(f"unalignable='{unalignable}' needs encoder_frames (the model's frames for n input frames)")
        self.data_dir = Path(data_dir)
        scp = self.data_dir / "feats.scp"
        if not scp.is_file():
            raise DataDirError(f"{scp}: no such file (run the feature stage first)")
        self._reader = FeatsScp(scp)
        keys = list(self._reader.entries)
        text_entries = {e.key: e for e in read_entries(self.data_dir / "text")}
        frames = read_kv(self.data_dir / "utt2num_frames")
        self.keys: List[str] = []
        self.tokens: Dict[str, List[int]] = {}
        self.texts: Dict[str, str] = {}
        self.lengths: List[int] = []
        self.skipped: List[str] = []
        for key in keys:
            if key not in text_entries:
                raise DataDirError(f"{self.data_dir}/text: no transcript for utterance '{key}'")
            e = text_entries[key]
            ids = tokenizer.encode(e.value)
            if not ids:
                raise DataDirError(f"{self.data_dir}/text:{e.lineno}: utterance '{key}' has an empty transcript")
            n = int(frames[key])
            kept = encoder_frames(n) if encoder_frames is not None and unalignable != "keep" else len(ids)
            if len(ids) > kept:
                if unalignable == "error":
                    raise DataDirError(f"{self.data_dir}/text:{e.lineno}: utterance '{key}': {len(ids)} tokens "
                                       f"for {n} frames ({kept} after subsampling)")
                logging.warning("skip %s: %d tokens do not fit %d frames (%d after subsampling)", key, len(ids), n,
                                kept)
                self.skipped.append(key)
                continue
            self.keys.append(key)
            self.tokens[key] = ids
            self.texts[key] = e.value
            self.lengths.append(n)
        if self.skipped:
            logging.warning("%s: skipped %d utterance(s) too short for their transcripts", self.data_dir,
                            len(self.skipped))
        self.cmvn = cmvn
        self.augmented = AugmentedFbank(self.data_dir, augment) if augment is not None else None

    def __len__(self) -> int:
        return len(self.keys)

    def set_epoch(self, epoch: int) -> None:
        """The epoch seeds the augmentation draws (a no-op without augmentation)."""
        if self.augmented is not None:
            self.augmented.set_epoch(epoch)

    def __getitem__(self, i: int) -> Dict[str, object]:
        key = self.keys[i]
        if self.augmented is not None:
            feats = self.augmented(key)[1]
        else:
            feats = np.array(self._reader[key], dtype=np.float32)  # a writable copy
        if self.cmvn is not None:
            feats = self.cmvn(key, feats)
        return {"key": key, "feats": feats, "tokens": self.tokens[key], "text": self.texts[key]}


@dataclass
class ASRBatch:
    """``feats (B, T, D)``, ``lengths (B,)``, ``targets (B, U)`` zero-padded, ``target_lengths (B,)``."""

    keys: List[str]
    feats: torch.Tensor
    lengths: torch.Tensor
    targets: torch.Tensor
    target_lengths: torch.Tensor
    texts: List[str]

    def to(self, device: torch.device | str) -> "ASRBatch":
        return ASRBatch(self.keys, self.feats.to(device), self.lengths.to(device), self.targets.to(device),
                        self.target_lengths.to(device), self.texts)

    def __len__(self) -> int:
        return len(self.keys)


def collate_asr(items: Sequence[Dict[str, object]]) -> ASRBatch:
    feats = [torch.from_numpy(np.asarray(it["feats"])) for it in items]
    tokens = [torch.tensor(it["tokens"], dtype=torch.long) for it in items]
    return ASRBatch(
        [str(it["key"]) for it in items],
        torch.nn.utils.rnn.pad_sequence(feats, batch_first=True),
        torch.tensor([f.shape[0] for f in feats]),
        torch.nn.utils.rnn.pad_sequence(tokens, batch_first=True),
        torch.tensor([t.shape[0] for t in tokens]),
        [str(it["text"]) for it in items],
    )
