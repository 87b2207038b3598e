"""The joint ASR + SER system as one archive, and its one-pass inference.

The archive (task ``asr_ser``) holds two complete archives as members, ``asr.tar`` (the final ASR model,
:mod:`speechser.pack.packed_asr`) and ``ser.tar`` (the SER model fused with that ASR encoder,
:mod:`speechser.pack.packed_ser`), each with its own checksums, plus the outer ``meta.json``.

One pass (:meth:`PackedJoint.recognize_data_dir`): the audio is formatted and featurized once (the two
models share the front-end, as the VLSP recipe trains them), the ASR model's encoder runs once per
utterance, and its output feeds both the ASR decoder and, through the SER model's encoder-branch cache
(:meth:`speechser.models.asr_branch.ASREncoderBranch.remember`), the SER model's cross-attention. This
is exact only when the SER model's branch *is* the ASR encoder: frozen, all layers, the same weights and
the same CMVN statistics; :func:`shared_encoder` checks that when the archive is loaded, and inference
falls back to two passes (logged) otherwise. The branch computes its fbank from the waveform with
``torch``; the one pass reuses the front-end's precomputed fbank, equal up to float rounding.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch

from speechser.io.audio import AudioReader
from speechser.pack.archive import write_archive
from speechser.pack.packed import PackedArchive
from speechser.pack.packed_asr import PackedASR, pack_asr
from speechser.pack.packed_ser import PackedSER, pack_ser
from speechser.tasks.ser import SEROutputs, collect_ser_outputs


def pack_joint(ser_exp: Path | str, asr_exp: Path | str, out: Path | str, ser_checkpoint: Optional[str] = None,
               asr_checkpoint: Optional[str] = None, decoder: str = "ctc_greedy", beam: int = 10,
               corpus: str = "", results: Optional[Path | str] = None, min_duration: float = 0.5,
               extra_meta: Optional[Dict[str, Any]] = None) -> Path:
    """Pack the SER experiment ``ser_exp`` and the ASR experiment ``asr_exp`` whose encoder it fuses."""
    with tempfile.TemporaryDirectory() as tmp:
        asr = pack_asr(asr_exp, Path(tmp) / "asr.tar", asr_checkpoint, decoder, beam, corpus, None, min_duration,
                       extra_meta)
        ser = pack_ser(ser_exp, Path(tmp) / "ser.tar", ser_checkpoint, corpus, None, min_duration)
        members = {"asr.tar": asr.read_bytes(), "ser.tar": ser.read_bytes()}
        if results is not None:
            members["RESULTS.md"] = Path(results).read_bytes()
        meta = {"task": "asr_ser", "corpus": corpus, "min_duration": float(min_duration), "decoder": decoder,
                "asr_source": str(Path(asr_exp).resolve()), "ser_source": str(Path(ser_exp).resolve())}
        path = write_archive(out, members, meta)
    logging.info("packed the joint system (ASR %s, SER %s) into %s", asr_exp, ser_exp, path)
    return path


def shared_encoder(asr: PackedASR, ser: PackedSER) -> Optional[str]:
    """None when the SER model's ASR branch is exactly the ASR model's encoder (frozen, every layer, equal
    weights and CMVN), else why not."""
    branch = getattr(ser.ser.model, "asr", None)
    if branch is None:
        return "the SER model has no ASR encoder branch"
    if not branch.use_cache:
        return "the SER model's ASR branch is fine-tuned or uncached"
    encoder = asr.asr.model.encoder
    if branch.num_layers != len(encoder.layers):
        return f"the SER model uses {branch.num_layers} of the encoder's {len(encoder.layers)} layers"
    mine, theirs = branch.encoder.state_dict(), encoder.state_dict()
    if mine.keys() != theirs.keys() or any(not torch.equal(mine[k].cpu(), theirs[k].cpu()) for k in mine):
        return "the SER model's ASR branch has other weights than the ASR model (another checkpoint?)"
    mean, std = asr.asr.cmvn_mean_std()
    if not (np.allclose(branch.cmvn_mean.cpu().numpy(), mean, atol=1e-6)
            and np.allclose(branch.cmvn_istd.cpu().numpy(), 1.0 / std, rtol=1e-5)):
        return "the SER model's ASR branch normalizes with other CMVN statistics than the ASR model"
    if branch.fbank_opts != asr.front_end.typed():
        return "the SER model's ASR branch computes other fbank features than the ASR front-end"
    return None


@dataclass
class JointOutputs:
    """Transcripts and CTC confidences, the SER outputs, the skipped utterances, and the seconds spent."""

    hyps: Dict[str, str]
    confs: Dict[str, float]
    ser: SEROutputs
    skipped: Dict[str, str]
    seconds: Dict[str, float]
    one_pass: bool


class PackedJoint(PackedArchive):
    """A packed joint ASR + SER system: its two archives checked and loaded."""

    task = "asr_ser"

    def __init__(self, archive: Path | str, device: str = "auto") -> None:
        super().__init__(archive)
        self.asr = PackedASR(self.dir / "asr.tar", device)
        self.ser = PackedSER(self.dir / "ser.tar", device)
        self.labels = self.ser.labels
        self.why_two_passes = shared_encoder(self.asr, self.ser)
        if self.ser.front_end != self.asr.front_end:
            self.why_two_passes = self.why_two_passes or "the two models have different front-ends"
        if self.why_two_passes:
            logging.warning("%s: two passes (ASR, then SER): %s", self.archive, self.why_two_passes)

    def close(self) -> None:
        self.asr.close()
        self.ser.close()
        super().close()

    def recognize_data_dir(self, data_dir: Path | str, work_dir: Path | str, one_pass: bool = True
                           ) -> JointOutputs:
        """Transcripts and emotions of every utterance of ``data_dir`` (no labels needed). ``one_pass`` False
        (or a system whose SER branch is not the ASR encoder) runs the two archives one after the other,
        each reading and featurizing the audio itself, as two separate systems would."""
        one_pass = one_pass and not self.why_two_passes
        branch = getattr(self.ser.ser.model, "asr", None)
        if branch is not None and branch.use_cache:
            branch.forget()  # nothing of an earlier call is reused: each call costs what it says
        seconds: Dict[str, float] = {}
        t0 = time.perf_counter()
        if not one_pass:
            hyps, confs, skipped = self.asr.transcribe_data_dir(data_dir, Path(work_dir) / "asr")
            seconds["asr"] = time.perf_counter() - t0
            done = self.ser.label_data_dir(data_dir, Path(work_dir) / "ser")
            seconds["ser"] = time.perf_counter() - t0 - seconds["asr"]
            return JointOutputs(hyps, confs, done.outputs, {**skipped, **done.skipped}, seconds, False)
        feats_dir, skipped = self.asr.featurize(data_dir, work_dir)
        seconds["features"] = time.perf_counter() - t0
        audio = AudioReader(feats_dir, target_rate=16000)
        encoder_outputs: Dict[str, torch.Tensor] = {}
        model = self.asr.asr.model

        def encode_and_remember(feats: torch.Tensor, lengths: torch.Tensor, keys: Any) -> Any:
            enc, lens = model.encoder(feats, lengths)
            for key, e, n in zip(keys, enc, lens):
                encoder_outputs[key] = e[: int(n)]
            return enc, lens

        hyps, confs = self.asr.transcribe_feats(feats_dir, encode_and_remember)
        for key, out in encoder_outputs.items():
            branch.remember(key, torch.from_numpy(audio[key][0]), out)
        seconds["asr"] = time.perf_counter() - t0 - seconds["features"]
        ser = collect_ser_outputs(self.ser.ser, feats_dir, require_labels=False)
        seconds["ser"] = time.perf_counter() - t0 - seconds["features"] - seconds["asr"]
        return JointOutputs(hyps, confs, ser, skipped, seconds, True)
