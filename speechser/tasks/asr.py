"""The ASR task: tokenizer, data, model and trainer wired together from a resolved config, and the
trained model loaded back from its experiment directory (:func:`load_experiment`) for decoding, the
data filter and fusion into SER models.

A resolved ASR ``config.yaml`` records ``model.input_dim`` (the feature dimension) and
``model.vocab_size``; training copies the token list or sentencepiece model (with its
``tokenizer.json``) into ``<exp>/tokens/`` and the global CMVN statistics into ``<exp>/cmvn.ark``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import kaldiio
import torch
from tqdm import tqdm

from speechser.config import ConfigError, check_ranges, load_config
from speechser.data.asr_dataset import FeatsTextDataset, collate_asr
from speechser.data.augment import WaveformAugmentor
from speechser.data.folds import check_fold_features
from speechser.data.loader import FeatsDataConfig, bucketed_loader
from speechser.data.sampler import DistInfo
from speechser.decode.ctc import ctc_greedy_search, ctc_prefix_beam_search
from speechser.decode.rnnt import rnnt_beam_search, rnnt_greedy_search
from speechser.features.fbank import cmvn_mean_std
from speechser.io.datadir import read_kv
from speechser.metrics.asr import write_asr_scores
from speechser.models.asr_branch import ASREncoderBranch
from speechser.models.registry import MODELS, ModelSection, build_model, model_config_dict
from speechser.tasks.experiment_dir import (
    CMVN_FILE,
    check_input_dim,
    copy_global_cmvn,
    record_inference_inputs,
    copy_into_experiment,
    feature_dim,
    load_trained_model,
    model_device,
    read_experiment_config,
    resolve_checkpoint,
    train_model,
    use_experiment_cmvn,
)
from speechser.text.tokenizer import (
    SETTINGS_FILE,
    GraphemeTokenizer,
    SentencePieceTokenizer,
    Tokenizer,
    read_tokenizer_settings,
)
from speechser.train.checkpoint import load_model_state
from speechser.train.experiment import Experiment
from speechser.train.trainer import (
    OptimConfig,
    SchedulerConfig,
    TrainerConfig,
    start_experiment,
)

#: Where an ASR experiment keeps its copy of the tokenizer files.
TOKENS_DIR = "tokens"


@dataclass
class ASRDataConfig(FeatsDataConfig):
    #: ``char`` (a token list file, one token per line) or ``sentencepiece`` (a ``.model`` file).
    token_type: str = "char"
    token_list: str = ""
    bpe_model: str = ""

    def __post_init__(self) -> None:
        check_ranges(self, max_frames="[1, inf)", max_batch_size="[1, inf)", num_workers="[0, inf)")


@dataclass
class ASRModelSection(ModelSection):
    #: Output vocabulary size (blank included); 0 in a YAML = from the tokenizer.
    vocab_size: int = 0


@dataclass
class ASRTrainConfig:
    seed: int = 0
    data: ASRDataConfig = field(default_factory=ASRDataConfig)
    model: ASRModelSection = field(default_factory=lambda: ASRModelSection(name="conformer_transducer"))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(name="adam", lr=0.004, weight_decay=1e-6))
    scheduler: SchedulerConfig = field(default_factory=lambda: SchedulerConfig(name="noam", warmup_steps=10000))
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(best_metric="acc", average_nbest=10,
                                                                         keep_nbest=10))


def load_asr_config(path: Optional[Path | str], overrides: Sequence[str] = ()) -> ASRTrainConfig:
    """Load and resolve a training config: the model's own keys checked, defaults filled in."""
    conf = load_config(ASRTrainConfig, path, overrides)
    conf.model.conf = model_config_dict(conf.model.name, conf.model.conf)
    asr_models = sorted(name for name, (cls, _) in MODELS.items() if hasattr(cls, "output_frames"))
    if conf.model.name not in asr_models:
        raise ConfigError(f"model.name '{conf.model.name}' is not an ASR model (ASR models: {', '.join(asr_models)})")
    for name in ("train_dir", "valid_dir"):
        if not getattr(conf.data, name):
            raise ConfigError(f"config key 'data.{name}' is required")
    return conf


def resolve_sizes(conf: ASRTrainConfig, tok: Tokenizer) -> None:
    """Record in ``conf.model`` what the training data and the tokenizer decide: the input dimension
    and the vocabulary size (a value the config gives must agree)."""
    check_fold_features(conf.data.train_dir, conf.data.valid_dir)  # a fold whose features were rebuilt since
    dim = feature_dim(conf.data.train_dir)
    for key, value in (("input_dim", dim), ("vocab_size", tok.vocab_size)):
        given = getattr(conf.model, key)
        if given and given != value:
            raise ConfigError(f"config key 'model.{key}' is {given}, but the training data and tokenizer give "
                              f"{value}")
        setattr(conf.model, key, value)


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
             augment: Optional[WaveformAugmentor] = None, model: Optional[torch.nn.Module] = None
             ) -> FeatsTextDataset:
    """``unalignable``: ``skip`` for training (counted, logged; ``model.output_frames`` says how many frames an
    utterance keeps after subsampling), ``keep`` for decoding (every utterance scored). ``augment``: the
    training set's on-the-fly augmentation (never given for validation or decoding)."""
    frames = model.output_frames if model is not None else None
    return FeatsTextDataset(data_dir, tok, conf.cmvn_for(data_dir), encoder_frames=frames, unalignable=unalignable,
                            augment=augment)


def train_asr(conf: ASRTrainConfig, exp_dir: Path | str, stop_after_epoch: Optional[int] = None) -> Dict[str, Any]:
    """Train an ASR model into ``exp_dir`` (resuming when it holds a checkpoint)."""
    tok = build_tokenizer(conf.data)
    resolve_sizes(conf, tok)
    with start_experiment(conf, Path(exp_dir)) as exp:
        return _train_asr(conf, exp, tok, stop_after_epoch)


def _copy_tokenizer(conf: ASRDataConfig, exp: Experiment) -> None:
    src = Path(conf.token_list if conf.token_type == "char" else conf.bpe_model)
    copy_into_experiment(src, exp, f"{TOKENS_DIR}/{src.name}")
    settings = src.parent / SETTINGS_FILE
    if settings.is_file():
        copy_into_experiment(settings, exp, f"{TOKENS_DIR}/{SETTINGS_FILE}")


def _train_asr(conf: ASRTrainConfig, exp: Experiment, tok: Tokenizer, stop_after_epoch: Optional[int]
               ) -> Dict[str, Any]:
    copy_global_cmvn(conf.data, exp)
    record_inference_inputs(conf.data, exp.dir, exp.dist.is_main)
    _copy_tokenizer(conf.data, exp)
    # data.augment: augmented fbank computed on the fly for the training set; valid stays precomputed.
    augment = WaveformAugmentor(conf.data.augment, seed=conf.seed) if conf.data.augment.enabled else None
    model = build_model(conf.model.name, conf.model.conf, input_dim=conf.model.input_dim,
                        vocab_size=conf.model.vocab_size)
    train_ds = _dataset(conf.data, conf.data.train_dir, tok, "skip", augment, model)
    valid_ds = _dataset(conf.data, conf.data.valid_dir, tok, "skip", model=model)
    check_input_dim(conf.model.input_dim, train_ds[0]["feats"], conf.data.train_dir)
    return train_model(conf, exp, model, train_ds, valid_ds, collate_asr, stop_after_epoch)


@dataclass
class ASRExperiment:
    """A trained ASR experiment: its resolved config (data paths pointing at the experiment's own
    copies of CMVN and tokens where it has them), the model (eval mode) and the tokenizer."""

    dir: Path
    conf: ASRTrainConfig
    model: torch.nn.Module
    tokenizer: Tokenizer
    checkpoint: Path

    def cmvn_mean_std(self) -> tuple:
        """The mean and standard deviation ``(D,)`` of the global CMVN its features were normalized with."""
        return experiment_cmvn(self.dir, self.conf)


def read_asr_experiment_config(exp_dir: Path | str) -> ASRTrainConfig:
    """An ASR experiment's resolved config, with its data options pointing at the experiment's own copies
    of the tokenizer and the CMVN statistics (where it has them: older experiments keep the paths)."""
    exp_dir = Path(exp_dir)
    conf = read_experiment_config(ASRTrainConfig, exp_dir)
    use_experiment_cmvn(conf.data, exp_dir)
    d = conf.data
    own = exp_dir / TOKENS_DIR / Path(d.token_list if d.token_type == "char" else d.bpe_model).name
    if own.is_file():
        if d.token_type == "char":
            d.token_list = str(own)
        else:
            d.bpe_model = str(own)
    return conf


def experiment_cmvn(exp_dir: Path, conf: ASRTrainConfig) -> tuple:
    """The global CMVN ``(mean, std)`` ``(D,)`` of an ASR experiment: its ``cmvn.ark`` (older experiments:
    the ``data.cmvn_stats`` path of their config, as given or relative to the recipe directory)."""
    candidates = [exp_dir / CMVN_FILE]
    if conf.data.cmvn_stats:
        candidates += [Path(conf.data.cmvn_stats), exp_dir.parent.parent / conf.data.cmvn_stats]
    for c in candidates:
        if c.is_file():
            return cmvn_mean_std(kaldiio.load_mat(str(c)))
    raise FileNotFoundError(f"{exp_dir}: no CMVN statistics (looked for {', '.join(map(str, candidates))})")


def asr_model_section(exp_dir: Path | str, checkpoint: Optional[Path | str] = None) -> Dict[str, Any]:
    """What another model needs to rebuild this experiment's ASR model: ``{"name", "conf", "input_dim",
    "vocab_size"}`` (experiments trained before the sizes were recorded in ``config.yaml`` give them through
    the weights of ``checkpoint``)."""
    exp_dir = Path(exp_dir)
    conf = read_asr_experiment_config(exp_dir)
    m = conf.model
    dims = {"input_dim": m.input_dim, "vocab_size": m.vocab_size}
    if not (m.input_dim and m.vocab_size):
        state = load_model_state(resolve_checkpoint(exp_dir, checkpoint, conf.trainer))
        dims = {"input_dim": int(state["input_dim"]),
                "vocab_size": next(int(state[k].shape[0]) for k in ("ctc.weight", "joint.out.weight") if k in state)}
    return {"name": m.name, "conf": m.conf, **dims}


def load_encoder_branch(exp_dir: Path | str, checkpoint: Optional[Path | str] = None, **options: Any
                        ) -> ASREncoderBranch:
    """The encoder of a trained ASR experiment as a branch of another model (its weights and CMVN loaded;
    ``options``: ``freeze``, ``num_layers``, ``cache``). Training a fusion model does the same in steps:
    :func:`speechser.tasks.ser.resolve_model` and ``trainer.init_param``."""
    exp_dir = Path(exp_dir)
    conf = read_asr_experiment_config(exp_dir)
    branch = ASREncoderBranch(asr_model_section(exp_dir, checkpoint), **options)
    state = load_model_state(resolve_checkpoint(exp_dir, checkpoint, conf.trainer))
    branch.encoder.load_state_dict({k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")})
    branch.set_cmvn(*experiment_cmvn(exp_dir, conf))
    return branch


def load_experiment(exp_dir: Path | str, checkpoint: Optional[Path | str] = None, device: str = "auto"
                    ) -> ASRExperiment:
    """Rebuild a trained ASR model from ``exp_dir/config.yaml`` and load ``checkpoint`` (a path, or a file
    name in ``exp_dir``; default: the trainer's averaged model, else its best)."""
    exp_dir = Path(exp_dir)
    conf = read_asr_experiment_config(exp_dir)
    tok = build_tokenizer(conf.data)
    ckpt = resolve_checkpoint(exp_dir, checkpoint, conf.trainer)
    model = load_trained_model(conf.model, ckpt, device, vocab_size=conf.model.vocab_size or tok.vocab_size)
    return ASRExperiment(exp_dir, conf, model, tok, ckpt)


DECODERS = ("ctc_greedy", "ctc_beam", "rnnt_greedy", "rnnt_beam")


def model_decoders(model_conf: Any) -> List[str]:
    """The decoders a model of the ``model`` section can run, from its branches: the CTC ones when it has a
    CTC head (``rnnt_weight`` < 1), the RNN-T ones when it has a transducer (``rnnt_weight`` > 0)."""
    weight = float((model_conf.conf or {}).get("rnnt_weight", 0.5))
    return [d for d in DECODERS if (d.startswith("ctc") and weight < 1.0) or (d.startswith("rnnt") and weight > 0.0)]


def check_decoder(decoder: str, model_conf: Any, where: Path | str) -> None:
    """A :class:`ConfigError` naming the missing branch when the model cannot run ``decoder``."""
    if decoder not in DECODERS:
        raise ValueError(f"unknown decoder '{decoder}' ({', '.join(DECODERS)})")
    can = model_decoders(model_conf)
    if decoder not in can:
        branch = "RNN-T" if decoder.startswith("rnnt") else "CTC"
        weight = (model_conf.conf or {}).get("rnnt_weight", 0.5)
        raise ConfigError(f"{where}: the model has no {branch} branch (model.conf.rnnt_weight {weight}), so it "
                          f"cannot decode with {decoder}; its decoders are {' '.join(can)} (asr.sh --decoders)")


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
    out = Path(out_dir)
    check_fold_features(data_dir)  # a fold whose features were rebuilt since it was made: refused, named
    check_decoder(decoder, read_asr_experiment_config(exp_dir).model, f"{exp_dir}/config.yaml")
    asr = load_experiment(exp_dir, checkpoint, device)
    conf, tok, model = asr.conf, asr.tokenizer, asr.model
    ds = _dataset(conf.data, str(data_dir), tok, "keep")
    loader, _ = bucketed_loader(ds, ds.lengths, collate_asr, conf.data.max_frames, conf.data.max_batch_size,
                                False, 0, DistInfo())
    hyps, confs = transcribe_batches(model, tok, loader, decoder, beam)
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


@torch.no_grad()
def transcribe_batches(model: torch.nn.Module, tok: Tokenizer, loader: Any, decoder: str = "ctc_greedy",
                       beam: int = 10, encode: Optional[Callable[..., Any]] = None
                       ) -> Tuple[Dict[str, str], Dict[str, float]]:
    """Hypotheses (text) and CTC confidences (NaN for a model without CTC) of every utterance of the batches
    of ``loader`` (each with ``keys``, ``feats (B, T, D)`` and ``lengths (B,)``), decoded with ``decoder``.
    ``encode(feats, lengths, keys) -> (enc, lens)`` replaces ``model.encode`` (one-pass joint inference keeps
    the encoder outputs)."""
    if decoder not in DECODERS:
        raise ValueError(f"unknown decoder '{decoder}' ({', '.join(DECODERS)})")
    missing = model.ctc is None if decoder.startswith("ctc") else (model.predictor is None or model.joint is None)
    if missing:
        raise ConfigError(f"the model has no {'CTC' if decoder.startswith('ctc') else 'RNN-T'} branch, so it "
                          f"cannot decode with {decoder}")
    dev = model_device(model)
    hyps: Dict[str, str] = {}
    confs: Dict[str, float] = {}
    for batch in tqdm(loader, desc=f"decode {decoder}", disable=None, leave=False):
        batch = batch.to(dev)
        if encode is None:
            enc, lens = model.encode(batch.feats, batch.lengths)
        else:
            enc, lens = encode(batch.feats, batch.lengths, batch.keys)
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
    return hyps, confs
