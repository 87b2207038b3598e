"""k-NN interpolated decoding of a trained SER experiment (see :mod:`speechser.knn.datastore`).

The datastore is built from the training and validation sets' embeddings;
``beta``, ``k`` and the temperature are tuned on the validation set with
leave-one-out search (a validation utterance never retrieves itself) over the
grid of a :class:`KNNConfig` (a YAML, ``conf/knn.yaml`` in the recipes, each
key overridable from the command line), then applied unchanged to every test
set.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import kaldiio
import torch

from speechser.config import ConfigValueError, check_choice, check_ranges, load_config
from speechser.io.audio import AudioReader
from speechser.io.datadir import write_kv
from speechser.knn.datastore import KNNDatastore, interpolate, tune_knn
from speechser.metrics.classification import confusion_matrix, scores_from_confusion
from speechser.metrics.decode_dir import write_ser_decode
from speechser.tasks.ser import collect_ser_outputs, load_experiment


@dataclass
class KNNConfig:
    """The k-NN search: the grid tuned on the validation set and the search backend."""

    #: Interpolation weights of the model's posterior: ``p = beta * p_model + (1 - beta) * p_knn``.
    betas: List[float] = field(default_factory=lambda: [x / 10 for x in range(11)])
    #: Numbers of neighbours.
    ks: List[int] = field(default_factory=lambda: [4, 8, 16, 32])
    #: Softmax temperatures over the neighbours' cosine similarities.
    temperatures: List[float] = field(default_factory=lambda: [0.05, 0.1, 0.2, 0.5, 1.0])
    #: ``torch`` (exact, any device) or ``faiss`` (when installed).
    backend: str = "torch"

    def __post_init__(self) -> None:
        for name in ("betas", "ks", "temperatures"):
            if not getattr(self, name):
                raise ConfigValueError(name, "the grid needs at least one value")
        check_ranges(self, betas="[0, 1]", ks="[1, inf)", temperatures="(0, inf)")
        check_choice(self, backend=("torch", "faiss"))


def load_knn_config(path: Optional[Path | str] = None, overrides: Sequence[str] = ()) -> KNNConfig:
    """A :class:`KNNConfig` from a YAML (optional; the defaults otherwise) and ``--key value`` overrides."""
    return load_config(KNNConfig, path, overrides)


#: Neighbours written per test utterance (``neighbours.tsv``), for reports and error analysis.
NEIGHBOURS_KEPT = 5


def utterance_audio(data_dirs: Sequence[Path | str]) -> Dict[str, Tuple[str, float, float]]:
    """Where each utterance's audio is, over ``data_dirs``: key -> ``(wav.scp source, start, end)`` in
    seconds (``end`` -1 = to the end; with a ``segments`` file, the segment's bounds in its recording).
    Relative file paths are made absolute (they are relative to the recipe, where this runs); a directory
    without ``wav.scp`` (a features-only directory) adds nothing."""
    out: Dict[str, Tuple[str, float, float]] = {}
    for d in map(Path, data_dirs):
        if not (d / "wav.scp").is_file():
            continue
        reader = AudioReader(d)
        wavs = {k: (v if v.rstrip().endswith("|") or Path(v).is_absolute() else str(Path(v).resolve()))
                for k, v in reader.wav.items()}
        if reader.segments is not None:
            out.update({utt: (wavs[s.reco], s.start, s.end) for utt, s in reader.segments.items() if s.reco in wavs})
        else:
            out.update({k: (v, 0.0, -1.0) for k, v in wavs.items()})
    return out


def write_neighbours(out_dir: Path, keys: Sequence[str], sims: torch.Tensor, idx: torch.Tensor,
                     store_keys: Sequence[str], store_labels: Sequence[str],
                     audio: Dict[str, Tuple[str, float, float]]) -> None:
    """``out_dir/neighbours.tsv`` (``utt rank neighbour label similarity``, best first; ``sims`` and ``idx``
    ``(N, K)`` from :meth:`KNNDatastore.search`) and ``out_dir/audio.tsv`` (``key source start end`` for
    the test utterances and their neighbours whose audio is known; read by the HTML report's players)."""
    shown = set(keys)
    with open(out_dir / "neighbours.tsv", "w", encoding="utf-8") as f:
        f.write("utt\trank\tneighbour\tlabel\tsimilarity\n")
        for key, row_s, row_i in zip(keys, sims.tolist(), idx.tolist()):
            for rank, (sim, i) in enumerate(zip(row_s, row_i), 1):
                f.write(f"{key}\t{rank}\t{store_keys[i]}\t{store_labels[i]}\t{sim:.4f}\n")
                shown.add(store_keys[i])
    with open(out_dir / "audio.tsv", "w", encoding="utf-8") as f:
        f.write("key\tsource\tstart\tend\n")
        f.writelines(f"{k}\t{audio[k][0]}\t{audio[k][1]:g}\t{audio[k][2]:g}\n" for k in sorted(shown) if k in audio)


def _ua(refs: Sequence[int], hyps: Sequence[int], num_classes: int) -> float:
    return scores_from_confusion(confusion_matrix(list(refs), list(hyps), num_classes))["ua"]


def knn_decode_ser(
    exp_dir: Path | str,
    checkpoint: Optional[Path | str],
    train_dir: Path | str,
    valid_dir: Path | str,
    test_dirs: Sequence[Path | str],
    out_dir: Path | str,
    knn: Optional[KNNConfig] = None,
    device: str = "auto",
) -> Dict[str, Any]:
    """Writes ``out_dir/knn_params.json`` (the chosen ``beta, k, temperature`` and the valid UA with
    and without k-NN), ``out_dir/knn_grid.tsv`` (every point of the search), the datastore
    (``out_dir/datastore/embeddings.{ark,scp}``, L2-normalized, and its ``utt2label``) and, per
    test set, ``out_dir/<test name>/`` in :func:`write_ser_decode`'s layout, with each utterance's
    nearest datastore neighbours (:func:`write_neighbours`)."""
    knn = knn or KNNConfig()
    backend = knn.backend
    ser = load_experiment(exp_dir, checkpoint, device)
    labels = ser.labels
    C = len(labels)
    tr = collect_ser_outputs(ser, train_dir)
    va = collect_ser_outputs(ser, valid_dir)
    shared = set(tr.keys) & set(va.keys)
    if shared:
        logging.warning("%d utterance(s) are in both %s and %s: the tuning on valid is then optimistic",
                        len(shared), train_dir, valid_dir)
    store = KNNDatastore(torch.cat([tr.emb, va.emb]), tr.labels + va.labels, C, backend)
    own = [len(tr.keys) + i for i in range(len(va.keys))]
    best, grid = tune_knn(store, va.emb, va.post, va.labels, lambda r, h: _ua(r, h, C), betas=knn.betas, ks=knn.ks,
                          temperatures=knn.temperatures, exclude=own)
    out = Path(out_dir)
    (out / "datastore").mkdir(parents=True, exist_ok=True)
    keys = tr.keys + va.keys
    kaldiio.save_ark(str(out / "datastore/embeddings.ark"), {k: store.emb[i].numpy() for i, k in enumerate(keys)},
                     scp=str(out / "datastore/embeddings.scp"))
    store_names = [labels[int(c)] for c in store.labels]
    write_kv(out / "datastore/utt2label", dict(zip(keys, store_names)))
    with open(out / "knn_grid.tsv", "w") as f:
        f.write("beta\tk\ttemperature\tvalid_ua\n")
        f.writelines(f"{r.beta:.2f}\t{r.k}\t{r.temperature:g}\t{r.score:.6f}\n" for r in grid)
    summary: Dict[str, Any] = {
        "beta": best.beta, "k": best.k, "temperature": best.temperature, "valid_ua_knn": best.score,
        "valid_ua_model": _ua(va.labels, va.post.argmax(1).tolist(), C), "datastore_size": len(store),
        "backend": backend, "checkpoint": str(ser.checkpoint), "tests": {},
    }
    store_audio = utterance_audio([train_dir, valid_dir])
    for d in test_dirs:
        te = collect_ser_outputs(ser, d)
        post = interpolate(te.post, store.distribution(te.emb, best.k, best.temperature), best.beta)
        scores = write_ser_decode(out / Path(d).name, te.keys, post, te.labels, labels,
                                  {"checkpoint": str(ser.checkpoint), "knn": {"beta": best.beta, "k": best.k,
                                                                          "temperature": best.temperature}})
        sims, idx = store.search(te.emb, NEIGHBOURS_KEPT)  # fewer where the datastore is smaller
        write_neighbours(out / Path(d).name, te.keys, sims, idx, keys, store_names,
                         {**store_audio, **utterance_audio([d])})
        summary["tests"][Path(d).name] = {"ua_knn": scores["ua"],
                                          "ua_model": _ua(te.labels, te.post.argmax(1).tolist(), C)}
    with open(out / "knn_params.json", "w") as f:
        json.dump(summary, f, indent=1)
    logging.info("k-NN: beta %.2f k %d T %g (valid UA %.2f%% -> %.2f%%)", best.beta, best.k, best.temperature,
                 100 * summary["valid_ua_model"], 100 * best.score)
    return summary
