"""ASR training and decoding from a config: tokenizer, data, model, trainer wired together."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from speechser.config import ConfigError, check_ranges, from_dict, load_config, read_yaml
from speechser.data.asr_dataset import FeatsTextDataset, collate_asr
from speechser.data.augment import WaveformAugmentor
from speechser.data.loader import FeatsDataConfig, bucketed_loader
from speechser.io.datadir import read_kv
from speechser.decode.ctc import ctc_greedy_search, ctc_prefix_beam_search
from speechser.decode.rnnt import rnnt_beam_search, rnnt_greedy_search
from speechser.metrics.asr import write_asr_scores
from speechser.models.registry import ModelSection, build_model, model_config_dict
from speechser.text.tokenizer import (
    GraphemeTokenizer,
    SentencePieceTokenizer,
    Tokenizer,
    read_tokenizer_settings,
)
from speechser.train.checkpoint import load_model_state
from speechser.train.distributed import DistInfo
from speechser.train.experiment import Experiment
from speechser.train.trainer import (
    OptimConfig,
    SchedulerConfig,
    Trainer,
    TrainerConfig,
    resolve_device,
    start_experiment,
)


@dataclass
class ASRDataConfig(FeatsDataConfig):
    #: ``char`` (a token list file, one token per line) or ``sentencepiece`` (a ``.model`` file).
    token_type: str = "char"
    token_list: str = ""
    bpe_model: str = ""

    def __post_init__(self) -> None:
        check_ranges(self, max_frames="[1, inf)", max_batch_size="[1, inf)", num_workers="[0, inf)")


@dataclass
class ASRTrainConfig:
    seed: int = 0
    data: ASRDataConfig = field(default_factory=ASRDataConfig)
    model: ModelSection = field(default_factory=lambda: ModelSection(name="conformer_transducer"))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(name="adam", lr=0.004, weight_decay=1e-6))
    scheduler: SchedulerConfig = field(default_factory=lambda: SchedulerConfig(name="noam", warmup_steps=10000))
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(best_metric="acc", average_nbest=10,
                                                                         keep_nbest=10))


def load_asr_config(path: Optional[Path | str], overrides: Sequence[str] = ()) -> ASRTrainConfig:
    conf = load_config(ASRTrainConfig, path, overrides)
    conf.model.conf = model_config_dict(conf.model.name, conf.model.conf)
    for name in ("train_dir", "valid_dir"):
        if not getattr(conf.data, name):
            raise ConfigError(f"config key 'data.{name}' is required")
    return conf


def build_tokenizer(conf: ASRDataConfig) -> Tokenizer:
    """The tokenizer of ``conf``, with the text settings (lower-casing) stored beside its token
    list or model by ``speechser-make-tokens`` (``tokenizer.json``)."""
    if conf.token_type == "char":
        if not conf.token_list:
            raise ConfigError("config key 'data.token_list' is required for token_type char")
        return GraphemeTokenizer(conf.token_list, **_text_settings(conf.token_list))
    if conf.token_type == "sentencepiece":
        if not conf.bpe_model:
            raise ConfigError("config key 'data.bpe_model' is required for token_type sentencepiece")
        return SentencePieceTokenizer(conf.bpe_model, **_text_settings(conf.bpe_model))
    raise ConfigError(f"config key 'data.token_type': unknown '{conf.token_type}' (char, sentencepiece)")


def _text_settings(token_file: str) -> Dict[str, bool]:
    try:
        return {"lowercase": bool(read_tokenizer_settings(token_file).get("lowercase", False))}
    except ValueError as err:
        raise ConfigError(str(err)) from None


def _dataset(conf: ASRDataConfig, data_dir: str, tok: Tokenizer, unalignable: str,
             augment: Optional[WaveformAugmentor] = None) -> FeatsTextDataset:
    """``unalignable``: ``skip`` for training (counted, logged), ``keep`` for decoding (every utterance scored).
    ``augment``: the training set's on-the-fly augmentation (never given for validation or decoding)."""
    return FeatsTextDataset(data_dir, tok, conf.cmvn_for(data_dir), unalignable=unalignable, augment=augment)


def train_asr(conf: ASRTrainConfig, exp_dir: Path | str, stop_after_epoch: Optional[int] = None) -> Dict[str, Any]:
    """Train an ASR model into ``exp_dir`` (resuming when it holds a checkpoint)."""
    exp_dir = Path(exp_dir)
    with start_experiment(conf, exp_dir) as exp:
        return _train_asr(conf, exp, stop_after_epoch)


def _train_asr(conf: ASRTrainConfig, exp: Experiment, stop_after_epoch: Optional[int]) -> Dict[str, Any]:
    exp_dir, dist = exp.dir, exp.dist
    if conf.data.cmvn_type == "global" and conf.data.cmvn_stats and dist.is_main:
        # The experiment carries its normalization, so that its encoder can be reused from elsewhere.
        shutil.copyfile(conf.data.cmvn_stats, exp_dir / "cmvn.ark")
    tok = build_tokenizer(conf.data)
    # data.augment: augmented fbank computed on the fly for the training set; valid stays precomputed.
    augment = WaveformAugmentor(conf.data.augment, seed=conf.seed) if conf.data.augment.enabled else None
    train_ds = _dataset(conf.data, conf.data.train_dir, tok, "skip", augment)
    valid_ds = _dataset(conf.data, conf.data.valid_dir, tok, "skip")
    input_dim = int(np.asarray(train_ds[0]["feats"]).shape[1])
    model = build_model(conf.model.name, conf.model.conf, input_dim=input_dim, vocab_size=tok.vocab_size)
    d = conf.data
    train_loader, sampler = bucketed_loader(train_ds, train_ds.lengths, collate_asr, d.max_frames, d.max_batch_size,
                                            True, conf.seed, dist, d.num_workers)
    valid_loader, _ = bucketed_loader(valid_ds, valid_ds.lengths, collate_asr, d.max_frames, d.max_batch_size,
                                      False, conf.seed, dist, d.num_workers)
    trainer = Trainer(model, exp_dir, conf.trainer, conf.optim, conf.scheduler, dist, exp)

    def set_epoch(epoch: int) -> None:  # the batch order and the augmentation draws
        sampler.set_epoch(epoch)
        train_ds.set_epoch(epoch)

    return trainer.run(train_loader, valid_loader, len(sampler), set_epoch, stop_after_epoch)


DECODERS = ("ctc_greedy", "ctc_beam", "rnnt_greedy", "rnnt_beam")


@torch.no_grad()
def decode_asr(
    exp_dir: Path | str,
    checkpoint: Path | str,
    data_dir: Path | str,
    out_dir: Path | str,
    decoder: str = "ctc_greedy",
    beam: int = 10,
    device: str = "auto",
    allow_missing: bool = False,
) -> Dict[str, float]:
    """Decode every utterance of ``data_dir`` with a trained model; write ``text`` (hypotheses),
    ``confidence`` (CTC confidence per utterance, whatever the decoder) and
    the scores (``result.wer.md``, ``result.cer.md``, ``alignment.txt``, ``scores.json``)."""
    if decoder not in DECODERS:
        raise ValueError(f"unknown decoder '{decoder}' ({', '.join(DECODERS)})")
    exp_dir, out = Path(exp_dir), Path(out_dir)
    conf = from_dict(ASRTrainConfig, read_yaml(exp_dir / "config.yaml"), source=str(exp_dir / "config.yaml"))
    tok = build_tokenizer(conf.data)
    state = load_model_state(checkpoint)
    model = build_model(conf.model.name, conf.model.conf, input_dim=int(state["input_dim"]),
                        vocab_size=tok.vocab_size)
    model.load_state_dict(state)
    model.to(resolve_device(device)).eval()
    ds = _dataset(conf.data, str(data_dir), tok, "keep")
    loader, _ = bucketed_loader(ds, ds.lengths, collate_asr, conf.data.max_frames, conf.data.max_batch_size,
                                False, 0, DistInfo())
    dev = next(model.parameters()).device
    hyps: Dict[str, str] = {}
    confs: Dict[str, float] = {}
    for batch in tqdm(loader, desc=f"decode {decoder}", disable=None, leave=False):
        batch = batch.to(dev)
        enc, lens = model.encode(batch.feats, batch.lengths)
        lp = model.ctc_log_probs(enc) if model.ctc is not None else None
        greedy = ctc_greedy_search(lp, lens) if lp is not None else None
        if decoder == "ctc_greedy":
            assert greedy is not None
            token_lists: List[List[int]] = [h.tokens for h in greedy]
        elif decoder == "ctc_beam":
            assert lp is not None
            token_lists = [ctc_prefix_beam_search(lp[b], int(lens[b]), beam=beam, token_prune=beam)[0][0]
                           for b in range(len(batch))]
        elif decoder == "rnnt_greedy":
            token_lists = rnnt_greedy_search(enc, lens, model.predictor, model.joint)
        else:
            token_lists = [rnnt_beam_search(enc[b], int(lens[b]), model.predictor, model.joint, beam=beam)[0][0]
                           for b in range(len(batch))]
        for b, key in enumerate(batch.keys):
            hyps[key] = tok.decode(token_lists[b])
            confs[key] = greedy[b].confidence if greedy is not None else float("nan")
    # The references are the set's whole ``text``, not the dataset's keys, so that an utterance lost on
    # the way (no features, say) is an error naming it rather than a WER over fewer utterances.
    refs = {k: tok.normalize(v) for k, v in read_kv(Path(data_dir) / "text", allow_empty_value=True).items()}
    out.mkdir(parents=True, exist_ok=True)
    (out / "text").write_text("".join(f"{k} {hyps[k]}\n" for k in sorted(hyps)), encoding="utf-8")
    # The references as the tokenizer normalizes them, so that every later comparison (the scorer,
    # the data filter) uses exactly the text the hypotheses were scored against.
    (out / "ref").write_text("".join(f"{k} {refs[k]}\n" for k in sorted(refs)), encoding="utf-8")
    (out / "confidence").write_text("".join(f"{k} {confs[k]:.4f}\n" for k in sorted(confs)))
    scores = write_asr_scores(refs, hyps, out, allow_missing=allow_missing)
    (out / "scores.json").write_text(json.dumps({**scores, "decoder": decoder, "n": len(hyps), "n_ref": len(refs),
                                                 "data_dir": str(data_dir), "checkpoint": str(checkpoint)},
                                                indent=1))
    logging.info("%s (%s): WER %.2f%% CER %.2f%%", data_dir, decoder, 100 * scores["wer"], 100 * scores["cer"])
    return scores
