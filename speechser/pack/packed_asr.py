"""Packing a trained ASR experiment into one archive, and transcribing any audio with the archive.

The archive holds, for task ``asr``, the members every packed model has (:mod:`speechser.pack.packed`) and:

    tokens.<file>  the experiment's tokenizer files (``tokens/``: the token list or sentencepiece model and
                   ``tokenizer.json``)
    cmvn.ark       the experiment's global CMVN statistics
    RESULTS.md     (optional) the recipe's WER table

``meta.json`` records the decoder and beam. The recipe's last stage packs with the decoder that has the
lowest WER on the valid set (:func:`choose_decoder`); the test set is never looked at for it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from speechser.data.ser_dataset import FeatsLabelDataset, collate_feats_labels
from speechser.data.loader import bucketed_loader
from speechser.data.sampler import DistInfo
from speechser.data.folds import check_experiment_folds
from speechser.pack.archive import PackError, PackUnsupported, write_archive
from speechser.pack.packed import MODEL_FILE, PackedModel, common_members
from speechser.tasks.asr import DECODERS, TOKENS_DIR, ASRExperiment, load_experiment, transcribe_batches
from speechser.tasks.experiment_dir import CMVN_FILE, recorded_front_end

TOKENS_PREFIX = "tokens."


def choose_decoder(decode_dirs: Sequence[Path | str]) -> Tuple[str, float]:
    """The decoder with the lowest WER among decode directories of one set (their ``scores.json``: ``wer``
    and ``decoder``); ties go to the first given."""
    best: Optional[Tuple[str, float]] = None
    for d in decode_dirs:
        path = Path(d) / "scores.json"
        if not path.is_file():
            raise PackError(f"{path}: no such file (decode the valid set first, or give --decoder)")
        scores = json.loads(path.read_text())
        if best is None or scores["wer"] < best[1]:
            best = (str(scores["decoder"]), float(scores["wer"]))
    if best is None:
        raise PackError("no decode directory to choose a decoder from")
    return best


def pack_asr(exp_dir: Path | str, out: Path | str, checkpoint: Optional[str] = None, decoder: str = "ctc_greedy",
             beam: int = 10, corpus: str = "", results: Optional[Path | str] = None,
             min_duration: float = 0.1, extra_meta: Optional[Dict[str, Any]] = None) -> Path:
    """Pack the ASR experiment ``exp_dir`` (its ``checkpoint``, default the averaged else best model) with
    ``decoder`` and ``beam`` into ``out``; the other arguments as for :func:`speechser.pack.packed_ser.pack_ser`."""
    if decoder not in DECODERS:
        raise PackError(f"unknown decoder '{decoder}' ({', '.join(DECODERS)})")
    check_experiment_folds(exp_dir)  # features rebuilt since the folds were made: refused, naming the stage
    asr = load_experiment(exp_dir, checkpoint, device="cpu")
    conf = asr.conf
    if conf.data.cmvn_type != "global":
        raise PackUnsupported(f"{exp_dir}: ASR with cmvn_type '{conf.data.cmvn_type}': packing supports global CMVN")
    front_end = recorded_front_end(exp_dir)
    members = common_members(conf, exp_dir, asr.checkpoint, front_end)
    tokens = Path(exp_dir) / TOKENS_DIR
    if not tokens.is_dir():
        raise PackError(f"{tokens}: no such folder (the experiment's copy of its tokenizer)")
    for f in sorted(tokens.iterdir()):
        members[TOKENS_PREFIX + f.name] = f.read_bytes()
    members[CMVN_FILE] = Path(conf.data.cmvn_stats).read_bytes()
    if results is not None:
        members["RESULTS.md"] = Path(results).read_bytes()
    meta: Dict[str, Any] = {"task": "asr", "model": conf.model.name, "decoder": decoder, "beam": int(beam),
                            "min_duration": float(min_duration), "corpus": corpus,
                            "source": str(Path(exp_dir).resolve()), "checkpoint": asr.checkpoint.name,
                            "front_end": front_end.to_json(), **(extra_meta or {})}
    path = write_archive(out, members, meta)
    logging.info("packed %s (%s, %s) into %s", exp_dir, asr.checkpoint.name, decoder, path)
    return path


class PackedASR(PackedModel):
    """A packed ASR model, checked and loaded; :meth:`transcribe_data_dir` decodes with the packed decoder."""

    task = "asr"

    def __init__(self, archive: Path | str, device: str = "auto") -> None:
        super().__init__(archive)
        (self.dir / TOKENS_DIR).mkdir(exist_ok=True)
        for member in list(self.dir.glob(TOKENS_PREFIX + "*")):
            member.replace(self.dir / TOKENS_DIR / member.name[len(TOKENS_PREFIX):])
        try:
            self.asr: ASRExperiment = load_experiment(self.dir, MODEL_FILE, device)
        except (OSError, ValueError, KeyError, RuntimeError) as err:
            raise self.loading_error(err) from None
        self.decoder = str(self.meta.get("decoder", "ctc_greedy"))
        self.beam = int(self.meta.get("beam", 10))

    def transcribe_data_dir(self, data_dir: Path | str, work_dir: Path | str
                            ) -> Tuple[Dict[str, str], Dict[str, float], Dict[str, str]]:
        """Hypotheses and CTC confidences of every utterance of ``data_dir`` (no transcripts needed), and the
        utterances skipped with their reasons."""
        feats_dir, skipped = self.featurize(data_dir, work_dir)
        hyps, confs = self.transcribe_feats(feats_dir)
        return hyps, confs, skipped

    def transcribe_feats(self, feats_dir: Path, encode: Optional[Callable[..., Any]] = None
                         ) -> Tuple[Dict[str, str], Dict[str, float]]:
        """Hypotheses and CTC confidences of the featurized data directory ``feats_dir`` (:meth:`featurize`);
        ``encode``: as for :func:`speechser.tasks.asr.transcribe_batches`."""
        d = self.asr.conf.data
        ds = FeatsLabelDataset(feats_dir, [], cmvn=d.cmvn_for(feats_dir), require_labels=False)
        loader, _ = bucketed_loader(ds, ds.lengths, collate_feats_labels, d.max_frames, d.max_batch_size, False, 0,
                                    DistInfo())
        return transcribe_batches(self.asr.model, self.asr.tokenizer, loader, self.decoder, self.beam, encode)
