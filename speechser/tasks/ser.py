"""The SER task: data, model and trainer wired together from a resolved config, and the trained model
loaded back from its experiment directory (:func:`load_experiment`) for inference, k-NN interpolation
and ensembles.

A resolved SER ``config.yaml`` records ``model.input_dim`` and ``model.labels`` (the label list, in
index order). A model fused with an ASR encoder (``model.conf.asr_exp_dir``) gets, when training
starts, the ASR experiment's model section copied into ``model.conf.asr_model``, the ASR encoder's
weights through ``trainer.init_param`` and its CMVN into the branch's buffers: the SER experiment
then holds everything its inference needs.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from tqdm import tqdm

from speechser.config import ConfigError, ConfigValueError, check_ranges, load_config
from speechser.data.augment import WaveformAugmentor
from speechser.data.ser_dataset import Batch, FeatsLabelDataset, collate_feats_labels
from speechser.data.labels import UNKNOWN_LABEL
from speechser.nets.aux_tasks import ASR_TASK
from speechser.data.folds import check_fold_features
from speechser.data.labels import labels_in_file, read_label_list
from speechser.data.loader import FeatsDataConfig, bucketed_loader
from speechser.data.sampler import DistInfo
from speechser.data.soft_labels import SoftLabelConfig, distribution
from speechser.features.ssl_feats import check_ssl_features
from speechser.io.datadir import read_kv
from speechser.losses.classification import class_weights_from_counts
from speechser.metrics.decode_dir import write_aux_decode
from speechser.metrics.decode_dir import write_ser_decode
from speechser.models.abs_model import AbsSERModel
from speechser.models.registry import ModelSection, build_model, model_config_dict
from speechser.tasks import asr as asr_task
from speechser.tasks.experiment_dir import (
    check_input_dim,
    copy_global_cmvn,
    record_inference_inputs,
    feature_dim,
    load_trained_model,
    model_device,
    read_experiment_config,
    resolve_checkpoint,
    train_model,
    use_experiment_cmvn,
)
from speechser.text.tokenizer import GraphemeTokenizer
from speechser.train.checkpoint import save_atomic
from speechser.train.experiment import Experiment
from speechser.train.trainer import OptimConfig, SchedulerConfig, TrainerConfig, start_experiment


@dataclass
class SERDataConfig(FeatsDataConfig):
    #: Label list, one class per line in index order.
    label_list: str = ""
    label_file: str = "utt2emo"
    cmvn_type: str = "speaker"
    max_frames: int = 6000
    max_batch_size: int = 32
    crop_frames: int = 0
    #: Weight classes by inverse frequency in the training set (power 0 = unweighted).
    class_weight_power: float = 0.0
    #: Also load each utterance's 16 kHz waveform (``wav.scp``) into the batch, for models that read audio.
    load_audio: bool = False
    #: Also load each utterance's transcript (``text``) and its grapheme tokens, for models that read or
    #: recognize it (``cmgi_ser``); the tokens are ``token_list``'s, else built from the training text.
    load_text: bool = False
    token_list: str = ""
    #: Lower-case the transcripts (tokens, CTC targets, and the text encoder's input in training).
    lowercase_text: bool = False
    #: Soft labels, annotation dropout and audio mixing (SAILER, paper 004); with ``class_weight_power``
    #: the class weights come from the summed training distributions and re-weight the soft targets.
    soft_labels: SoftLabelConfig = field(default_factory=SoftLabelConfig)
    #: Early fusion (issue 14): a feature directory of utterance-level vectors, one (1, F) matrix per
    #: utterance of every set (``dump/opensmile_functionals_ComParE_2016/all``), read beside the frames and
    #: normalized per speaker with its ``cmvn.scp`` (``cmvn_type`` speaker) or not (none); for models with
    #: a ``vector_dim`` (``tdnn_vector_ser``), which is filled in from it.
    vector_dir: str = ""
    #: A file of the training data directory listing utterance ids, one a line, left out of the training set
    #: (logged with their count; a name the directory lacks is an error): ``no_consensus``, the MSP-Podcast
    #: recipe's Train utterances of consensus O/X, for the categorical baseline that excludes them. Validation
    #: and test sets are not filtered (the recipe keeps O/X utterances in its Train split only).
    skip_file: str = ""

    def __post_init__(self) -> None:
        check_ranges(self, max_frames="[1, inf)", max_batch_size="[1, inf)", num_workers="[0, inf)",
                     crop_frames="[0, inf)", class_weight_power="[0, inf)")


@dataclass
class SERModelSection(ModelSection):
    #: The classes in index order; empty in a YAML = read from ``data.label_list`` when training starts.
    labels: List[str] = field(default_factory=list)
    #: The classes of each auxiliary task the model has (``model.conf.aux_weights``): label file -> the
    #: sorted values of that file in the training set; filled in when training starts.
    aux_labels: Dict[str, List[str]] = field(default_factory=dict)
    #: Grapheme tokens of the transcripts (``data.load_text``), blank first; filled in when training starts.
    tokens: List[str] = field(default_factory=list)


def _aux_sizes(m: SERModelSection) -> Dict[str, Any]:
    """The constructor arguments the recorded sizes give: ``aux_classes`` (label file -> class count) for
    models with auxiliary tasks, ``tokens`` for models that recognize the transcript."""
    out: Dict[str, Any] = {}
    if m.aux_labels:
        out["aux_classes"] = {k: len(v) for k, v in m.aux_labels.items()}
    if m.tokens:
        out["tokens"] = list(m.tokens)
    return out


def _tokenizer(conf: "SERTrainConfig") -> Optional[GraphemeTokenizer]:
    m = conf.model
    return GraphemeTokenizer(list(m.tokens), lowercase=conf.data.lowercase_text) if m.tokens else None


@dataclass
class SERTrainConfig:
    seed: int = 0
    #: The evaluation protocol the system was published with (``loso``, ``losess``, ``random<K>``, ``split``):
    #: a recipe's ``ser.sh`` makes its folds unless ``--protocol`` says otherwise; training does not read it.
    protocol: str = ""

    def __post_init__(self) -> None:
        p = self.protocol
        if p and p not in ("loso", "losess", "split") and not (p.startswith("random") and p[6:].isdigit()):
            raise ConfigValueError("protocol", f"'{p}' is not a protocol (loso, losess, random<K>, split)")
    data: SERDataConfig = field(default_factory=SERDataConfig)
    model: SERModelSection = field(default_factory=lambda: SERModelSection(name="tdnn_ser"))
    optim: OptimConfig = field(default_factory=OptimConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


def load_ser_config(path: Optional[Path | str], overrides: Sequence[str] = ()) -> SERTrainConfig:
    """Load and fully resolve a config: the model's own keys are checked and defaults filled in."""
    conf = load_config(SERTrainConfig, path, overrides)
    conf.model.conf = model_config_dict(conf.model.name, conf.model.conf)
    for name in ("train_dir", "valid_dir", "label_list"):
        if not getattr(conf.data, name):
            raise ConfigError(f"config key 'data.{name}' is required")
    return conf


def resolve_model(conf: SERTrainConfig) -> None:
    """Record in ``conf.model`` what the training data decide: ``input_dim``, ``labels``, the classes of each
    auxiliary task (``aux_labels``) and, with ``data.load_text``, the transcripts' graphemes (``tokens``);
    for a model fused with an ASR encoder, the ASR experiment's model section (``model.conf.asr_model``) and
    the ``trainer.init_param`` entry that loads its encoder. A value the config gives must agree."""
    m = conf.model
    check_fold_features(conf.data.train_dir, conf.data.valid_dir)  # a fold whose features were rebuilt since
    ssl = m.conf.get("ssl") if isinstance(m.conf.get("ssl"), dict) else {}
    if ssl.get("cached"):  # stored hidden states: of the encoder the config names
        for d in (conf.data.train_dir, conf.data.valid_dir):
            check_ssl_features(d, str(ssl.get("name_or_path", "")), [])
    dim = feature_dim(conf.data.train_dir)
    if m.input_dim and m.input_dim != dim:
        raise ConfigError(f"config key 'model.input_dim' is {m.input_dim}, but {conf.data.train_dir} has "
                          f"features of dimension {dim}")
    m.input_dim = dim
    _resolve_vector_dim(conf)
    labels = read_label_list(conf.data.label_list)
    if m.labels and list(m.labels) != labels:
        raise ConfigError(f"config key 'model.labels' {m.labels} differs from {conf.data.label_list} {labels}")
    m.labels = labels
    aux_tasks = sorted(m.conf.get("aux_weights") or {})
    if "text" in aux_tasks and not conf.data.load_text:
        raise ConfigError("model.conf.aux_weights has the ASR task 'text': set data.load_text: true")
    for name in (n for n in aux_tasks if n != "text"):  # the classification tasks' classes, from training data
        classes = labels_in_file(Path(conf.data.train_dir) / name)
        if m.aux_labels.get(name, classes) != classes:
            raise ConfigError(f"config key 'model.aux_labels.{name}' {m.aux_labels[name]} differs from the classes "
                              f"of {conf.data.train_dir}/{name} {classes}")
        m.aux_labels[name] = classes
    if conf.data.load_text and not m.tokens:
        if conf.data.token_list:
            m.tokens = GraphemeTokenizer(conf.data.token_list).tokens
        else:
            texts = read_kv(Path(conf.data.train_dir) / "text", allow_empty_value=True).values()
            m.tokens = GraphemeTokenizer.build_token_list(texts, lowercase=conf.data.lowercase_text)
    asr_dir = m.conf.get("asr_exp_dir", "")
    if asr_dir:
        asr_conf = asr_task.read_asr_experiment_config(asr_dir)
        ckpt = resolve_checkpoint(asr_dir, m.conf.get("asr_checkpoint") or None, asr_conf.trainer)
        m.conf["asr_model"] = asr_task.asr_model_section(asr_dir, ckpt)
        m.conf = model_config_dict(m.name, m.conf)
        spec = f"{ckpt.resolve()}:encoder.:asr.encoder."
        if spec not in conf.trainer.init_param:
            conf.trainer.init_param = [*conf.trainer.init_param, spec]


def _resolve_vector_dim(conf: SERTrainConfig) -> None:
    """``data.vector_dir`` and a model's ``vector_dim`` go together: record the vectors' width in
    ``model.conf.vector_dim`` (a value the config gives must agree)."""
    m, reads = conf.model, "vector_dim" in conf.model.conf
    if conf.data.vector_dir and not reads:
        raise ConfigError(f"config key 'data.vector_dir' is set, but model '{m.name}' reads no utterance vectors "
                          "(tdnn_vector_ser does)")
    if not reads:
        return
    if not conf.data.vector_dir:
        raise ConfigError(f"model '{m.name}' reads utterance vectors: set data.vector_dir (e.g. "
                          "dump/opensmile_functionals_ComParE_2016/all)")
    dim = feature_dim(conf.data.vector_dir)
    if m.conf["vector_dim"] and m.conf["vector_dim"] != dim:
        raise ConfigError(f"config key 'model.conf.vector_dim' is {m.conf['vector_dim']}, but "
                          f"{conf.data.vector_dir} has vectors of width {dim}")
    m.conf["vector_dim"] = dim


def _dataset(conf: SERDataConfig, data_dir: str, labels: List[str], train: bool,
             augment: Optional[WaveformAugmentor] = None,
             aux_labels: Optional[Dict[str, List[str]]] = None,
             tokenizer: Optional[GraphemeTokenizer] = None, seed: int = 0,
             require_labels: bool = True) -> FeatsLabelDataset:
    """``augment`` only for the training set (validation, inference and k-NN data are never augmented);
    ``aux_labels`` (label file -> classes) for training and validation of models with auxiliary tasks."""
    vectors = None
    if conf.vector_dir:
        from speechser.data.utt_vectors import load_utt_vectors

        vectors = load_utt_vectors(conf.vector_dir, conf.cmvn_type)
    return FeatsLabelDataset(data_dir, labels, conf.label_file, conf.cmvn_for(data_dir),
                             conf.crop_frames if train else 0, load_audio=conf.load_audio,
                             augment=augment if train else None, aux_labels=aux_labels, tokenizer=tokenizer,
                             soft_labels=conf.soft_labels, train=train, seed=seed, vectors=vectors,
                             require_labels=require_labels, skip_file=conf.skip_file)


def train_ser(conf: SERTrainConfig, exp_dir: Path | str, stop_after_epoch: Optional[int] = None) -> Dict[str, Any]:
    """Train an SER model as ``conf`` says into ``exp_dir`` (resuming when it holds a checkpoint)."""
    resolve_model(conf)
    with start_experiment(conf, Path(exp_dir)) as exp:
        return _train_ser(conf, exp, stop_after_epoch)


def _train_ser(conf: SERTrainConfig, exp: Experiment, stop_after_epoch: Optional[int]) -> Dict[str, Any]:
    copy_global_cmvn(conf.data, exp)
    record_inference_inputs(conf.data, exp.dir, exp.dist.is_main)
    labels = conf.model.labels
    augment = WaveformAugmentor(conf.data.augment, seed=conf.seed) if conf.data.augment.enabled else None
    aux = conf.model.aux_labels or None
    tok = _tokenizer(conf)
    train_ds = _dataset(conf.data, conf.data.train_dir, labels, train=True, augment=augment, aux_labels=aux,
                        tokenizer=tok, seed=conf.seed)
    valid_ds = _dataset(conf.data, conf.data.valid_dir, labels, train=False, aux_labels=aux, tokenizer=tok)
    check_input_dim(conf.model.input_dim, train_ds[0]["feats"], conf.data.train_dir)
    weights = None
    if conf.data.class_weight_power > 0 and train_ds.votes is not None:  # q: the summed distributions
        soft_counts = sum(distribution(train_ds.votes[k]).astype(float) for k in train_ds.keys)
        weights = class_weights_from_counts(list(soft_counts), conf.data.class_weight_power).tolist()
    elif conf.data.class_weight_power > 0:
        counts = Counter(train_ds.utt2label.values())
        weights = class_weights_from_counts([counts.get(i, 0) for i in range(len(labels))],
                                            conf.data.class_weight_power).tolist()
    model = build_model(conf.model.name, conf.model.conf, input_dim=conf.model.input_dim, num_classes=len(labels),
                        class_weights=weights, **_aux_sizes(conf.model))
    if conf.data.soft_labels.majority:  # validation reports min_map over the other classes
        model.minority_classes = tuple(i for i, c in enumerate(labels) if c not in conf.data.soft_labels.majority)
    if getattr(model, "fits_closed_form", False):  # scikit-learn models: one fit, no epochs
        return _fit_closed_form(conf, exp, model, train_ds, valid_ds)
    asr_dir = conf.model.conf.get("asr_exp_dir", "")
    if asr_dir:  # the encoder's weights come through trainer.init_param (resolve_model); its CMVN here
        asr_conf = asr_task.read_asr_experiment_config(asr_dir)
        model.asr.set_cmvn(*asr_task.experiment_cmvn(Path(asr_dir), asr_conf))
    return train_model(conf, exp, model, train_ds, valid_ds, collate_feats_labels, stop_after_epoch)


def _pooled_matrix(ds: FeatsLabelDataset) -> Tuple[np.ndarray, np.ndarray]:
    """Every utterance's features averaged over frames ``(N, D)`` and its label ``(N,)``."""
    rows, labels = [], []
    for i in range(len(ds)):
        item = ds[i]
        rows.append(np.asarray(item["feats"], dtype=np.float64).mean(0))
        labels.append(int(item["label"]))  # type: ignore[call-overload]
    return np.stack(rows), np.asarray(labels)


def _fit_closed_form(conf: SERTrainConfig, exp: Experiment, model: Any, train_ds: FeatsLabelDataset,
                     valid_ds: FeatsLabelDataset) -> Dict[str, Any]:
    """Fit a closed-form model (``linear_ser``) on the training set, its hyper-parameters on the validation
    set, and save it as ``valid.<best_metric>.best.pt`` (and ``linear_fit.json``, the grid's scores)."""
    import json

    x_train, y_train = _pooled_matrix(train_ds)
    x_valid, y_valid = _pooled_matrix(valid_ds)
    info = model.fit(x_train, y_train, x_valid, y_valid, labels=list(conf.model.labels) or None)
    out = exp.dir / f"valid.{conf.trainer.best_metric}.best.pt"
    save_atomic(model.state_dict(), out)
    (exp.dir / "linear_fit.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    return {"epochs": 0, "fit": info, "model": str(out)}


@dataclass
class SERExperiment:
    """A trained SER experiment: its resolved config, the model (eval mode), the label list."""

    dir: Path
    conf: SERTrainConfig
    model: AbsSERModel
    labels: List[str]
    checkpoint: Path


def load_experiment(exp_dir: Path | str, checkpoint: Optional[Path | str] = None, device: str = "auto"
                    ) -> SERExperiment:
    """Rebuild a trained SER model from ``exp_dir/config.yaml`` alone and load ``checkpoint`` (a path, or a
    file name in ``exp_dir``; default: the trainer's averaged model, else its best)."""
    exp_dir = Path(exp_dir)
    conf = read_experiment_config(SERTrainConfig, exp_dir)
    use_experiment_cmvn(conf.data, exp_dir)
    labels = list(conf.model.labels) or read_label_list(conf.data.label_list)  # older experiments: the file
    m = conf.model.conf
    if m.get("asr_exp_dir") and not m.get("asr_model"):  # a fused experiment from before issue 11
        m["asr_model"] = asr_task.asr_model_section(m["asr_exp_dir"], m.get("asr_checkpoint") or None)
    ckpt = resolve_checkpoint(exp_dir, checkpoint, conf.trainer)
    model = load_trained_model(conf.model, ckpt, device, num_classes=len(labels), **_aux_sizes(conf.model))
    assert isinstance(model, AbsSERModel)
    return SERExperiment(exp_dir, conf, model, labels, ckpt)


@dataclass
class SEROutputs:
    """Per-utterance outputs of an SER model, rows in ``keys`` order:
    ``emb (N, E)`` utterance embeddings, ``post (N, C)`` posteriors, ``labels (N,)`` references."""

    keys: List[str]
    emb: torch.Tensor
    post: torch.Tensor
    labels: List[int]
    #: Auxiliary tasks' predictions and references (:meth:`AbsSERModel.decode_outputs`): task -> utterance ->
    #: ``(hypothesis, reference)``; a label task's are class names, the ASR task's texts; reference None when
    #: the set has none.
    aux: Dict[str, Dict[str, Tuple[Any, Any]]] = field(default_factory=dict)


@torch.no_grad()
def collect_ser_outputs(ser: SERExperiment, data_dir: Path | str, require_labels: bool = True) -> SEROutputs:
    """Embeddings and posteriors of every utterance of ``data_dir`` (model in eval mode), sorted by key. With
    ``require_labels`` False a set without the label file (``data.label_file``) is read as unlabelled: its
    ``labels`` are all ``UNKNOWN_LABEL`` (inference; never a k-NN datastore)."""
    model, d = ser.model, ser.conf.data
    check_fold_features(data_dir)  # a fold whose features were rebuilt since it was made: refused, named
    # Transcripts where the set has them (a model may read them: eval_text truth); inference needs none.
    tok = _tokenizer(ser.conf) if (Path(data_dir) / "text").is_file() else None
    if ser.conf.model.input_dim:  # features of another front-end than the model was trained on
        got = feature_dim(data_dir)
        if got != ser.conf.model.input_dim:
            raise ConfigError(f"{data_dir}: features of dimension {got}, but the model in {ser.dir} was trained on "
                              f"{ser.conf.data.train_dir} with dimension {ser.conf.model.input_dim} (another "
                              "feature set or front-end?)")
    aux_labels = {n: c for n, c in ser.conf.model.aux_labels.items() if (Path(data_dir) / n).is_file()}
    ds = _dataset(d, str(data_dir), ser.labels, train=False, tokenizer=tok, require_labels=require_labels,
                  aux_labels=aux_labels)
    loader, _ = bucketed_loader(ds, ds.lengths, collate_feats_labels, d.max_frames, d.max_batch_size, False,
                                ser.conf.seed, DistInfo())
    dev = model_device(model)
    rows: Dict[str, tuple] = {}
    aux: Dict[str, Dict[str, Tuple[Any, Any]]] = {}
    for batch in tqdm(loader, desc=f"embed {Path(data_dir).name}", disable=None, leave=False):
        batch = batch.to(dev)
        emb, logits, preds = model.decode_outputs(batch)
        post = torch.softmax(logits.float(), dim=-1)
        for key, e, p, ref in zip(batch.keys, emb.float().cpu(), post.cpu(), batch.labels.tolist()):
            rows[key] = (e, p, ref)
        for name, hyps in preds.items():
            aux.setdefault(name, {}).update(_aux_pairs(name, hyps, batch, ser.conf.model.aux_labels))
    keys = sorted(rows)
    return SEROutputs(keys, torch.stack([rows[k][0] for k in keys]), torch.stack([rows[k][1] for k in keys]),
                      [rows[k][2] for k in keys], aux)


def _aux_pairs(name: str, hyps: List[Any], batch: Batch, aux_labels: Mapping[str, List[str]]
               ) -> Dict[str, Tuple[Any, Any]]:
    """One batch's ``key -> (hypothesis, reference)`` of auxiliary task ``name`` (class names, or texts)."""
    if name == ASR_TASK:
        refs: List[Any] = list(batch.texts) if batch.texts is not None else [None] * len(hyps)
        return {k: (h, r) for k, h, r in zip(batch.keys, hyps, refs)}
    classes = aux_labels.get(name, [])
    ref_idx = batch.aux[name].tolist() if name in batch.aux else [UNKNOWN_LABEL] * len(hyps)
    return {k: (classes[h] if h < len(classes) else str(h), classes[r] if 0 <= r < len(classes) else None)
            for k, h, r in zip(batch.keys, hyps, ref_idx)}


def infer_ser(
    exp_dir: Path | str,
    checkpoint: Optional[Path | str],
    data_dir: Path | str,
    out_dir: Path | str,
    device: str = "auto",
) -> Dict[str, float]:
    """Write ``posteriors.tsv``, ``hyp``, ``ref`` and ``scores.json`` for ``data_dir`` into ``out_dir``
    (:func:`speechser.metrics.decode_dir.write_ser_decode`); returns the scores. A set without the label
    file is decoded unlabelled: posteriors and hypotheses, no ``ref``, no scores."""
    ser = load_experiment(exp_dir, checkpoint, device)
    out = collect_ser_outputs(ser, data_dir, require_labels=False)
    scores = write_ser_decode(out_dir, out.keys, out.post, out.labels, ser.labels,
                              {"checkpoint": str(ser.checkpoint)})
    if out.aux:
        write_aux_decode(out_dir, out.aux)
    return scores
