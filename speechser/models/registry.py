"""The model registry: one explicit table from the name a config gives (``model.name``) to the model
class and its config dataclass. Each registered model lives in ``speechser/models/<name>.py``.

A new model is one file here, one line in :data:`MODELS` and a YAML that names it; the tasks,
the trainer and the entry points never name models.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Tuple, Type

from torch import nn

from speechser.config import ConfigError, from_dict
from speechser.models.bestrq_conformer import BestRQConfig, BestRQConformer
from speechser.models.cmgi_ser import CmGISER, CmGISERConfig
from speechser.models.conformer_transducer import ConformerTransducer, ConformerTransducerConfig
from speechser.models.linear_ser import LinearSER, LinearSERConfig
from speechser.models.metadata_ssl_ser import MetadataSSLSER, MetadataSSLSERConfig
from speechser.models.metadata_tdnn_ser import MetadataTDNNSER, MetadataTDNNSERConfig
from speechser.models.pcq_ser import PCQSER, PCQSERConfig
from speechser.models.sailer_ser import SAILERSER, SAILERSERConfig
from speechser.models.ssl_ser import SSLSER, SSLSERConfig
from speechser.models.tdnn_asr_fusion import TDNNASRFusion, TDNNASRFusionConfig
from speechser.models.text_ser import TextSER, TextSERConfig
from speechser.models.tdnn_ser import TDNNSER, TDNNSERConfig
from speechser.models.tdnn_vector_ser import TDNNVectorSER, TDNNVectorSERConfig

#: registry name -> (model class, config dataclass); the file is ``speechser/models/<name>.py``.
MODELS: Dict[str, Tuple[Type[nn.Module], type]] = {
    "bestrq_conformer": (BestRQConformer, BestRQConfig),          # BEST-RQ pre-training of a Conformer
    "cmgi_ser": (CmGISER, CmGISERConfig),                          # SER: SSL + CTC, BERT, CmGI (paper 001)
    "conformer_transducer": (ConformerTransducer, ConformerTransducerConfig),  # ASR: CTC + RNN-T
    "linear_ser": (LinearSER, LinearSERConfig),                     # SER: scikit-learn linear model on functionals
    "metadata_ssl_ser": (MetadataSSLSER, MetadataSSLSERConfig),      # SER: SSL (ARI) + metadata tasks
    "metadata_tdnn_ser": (MetadataTDNNSER, MetadataTDNNSERConfig),  # SER: fbank TDNN + metadata tasks
    "pcq_ser": (PCQSER, PCQSERConfig),                             # SER: MLCNN + SSL queries, CSQ (paper 003)
    "sailer_ser": (SAILERSER, SAILERSERConfig),                     # SER: SSL + pointwise convs (+ text), SAILER (paper 004)
    "text_ser": (TextSER, TextSERConfig),                           # SER: a text encoder over the transcript (paper 001's baseline)
    "ssl_ser": (SSLSER, SSLSERConfig),                             # SER on an SSL encoder (+ ASR fusion)
    "tdnn_asr_fusion": (TDNNASRFusion, TDNNASRFusionConfig),       # SER: fbank TDNN + ASR fusion
    "tdnn_ser": (TDNNSER, TDNNSERConfig),                          # SER: fbank TDNN
    "tdnn_vector_ser": (TDNNVectorSER, TDNNVectorSERConfig),        # SER: fbank TDNN + functionals (early fusion)
}


@dataclass
class ModelSection:
    """The ``model:`` section of a training config: a registered name, that model's own keys, and the
    input dimension, which the task fills in from the training data when training starts, so that the
    experiment's ``config.yaml`` alone rebuilds the model."""

    name: str = ""
    conf: Dict[str, Any] = field(default_factory=dict)
    #: Feature dimension of the input ``(B, T, input_dim)``; 0 in a YAML = from the training data.
    input_dim: int = 0


def model_names() -> list[str]:
    return sorted(MODELS)


def resolve_model_config(name: str, conf: Mapping[str, Any], where: str = "model.conf") -> Any:
    """Check ``conf`` against the named model's config dataclass (unknown keys are errors)."""
    if name not in MODELS:
        raise ConfigError(f"unknown model name '{name}' (registered: {', '.join(sorted(MODELS))})")
    return from_dict(MODELS[name][1], conf, where)


def build_model(name: str, conf: Mapping[str, Any], **kwargs: Any) -> nn.Module:
    """Build a registered model; ``kwargs`` carry the sizes (input_dim, and vocab_size or num_classes)."""
    cfg = resolve_model_config(name, conf)
    return MODELS[name][0](cfg, **kwargs)


def model_config_dict(name: str, conf: Mapping[str, Any]) -> Dict[str, Any]:
    """The resolved (defaults filled in) model config as a plain dict."""
    return dataclasses.asdict(resolve_model_config(name, conf))
