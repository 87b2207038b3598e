"""Packing a trained SER experiment into one archive, and labelling any audio with the archive.

The archive (:mod:`speechser.pack.archive`) holds, for task ``ser``, the members every packed model has
(:mod:`speechser.pack.packed`: ``config.yaml`` with the label list, ``model.pt`` = the weights the recipe
decodes with, ``frontend.json``, local pretrained models) and:

    labels.txt     the classes in index order
    cmvn.ark       Kaldi-layout statistics (2, D + 1): the experiment's global CMVN (``cmvn_type: global``),
                   or, with ``cmvn_type: speaker``, the training set's pooled statistics, used for a speaker
                   with fewer than ``min_speaker_frames`` frames at inference (logged)
    RESULTS.md     (optional) the scores the recipe wrote for the system
    vectors.frontend.json, vectors.cmvn.ark
                   (early fusion, ``data.vector_dir``) the second front-end, which makes the utterance vectors
                   (openSMILE functionals), and the pooled statistics of the training set's vectors, used for
                   a speaker with fewer than ``min_speaker_frames`` vectors at inference (logged)
    knn.embeddings.ark, knn.labels.txt
                   (with a k-NN decode directory) the datastore (N, E) and its labels, one per row;
                   ``meta.json`` records the tuned ``beta``, ``k``, ``temperature`` (``knn``), and labelling
                   interpolates the model's posteriors with the neighbours' as the recipe's k-NN decode did

Labelling (:meth:`PackedSER.label_data_dir`) runs the recipe's own code on a data directory without labels:
stages 2 and 3 (:meth:`PackedModel.featurize`; for early fusion also the vectors' front-end over the same
formatted audio, normalized per speaker as ``speechser.data.utt_vectors`` does in training), per-speaker or
global CMVN as in training, and the model's batched forward of stage 6. On the same audio, speakers and
weights it gives the recipe's posteriors.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import kaldiio
import numpy as np

from speechser.features.extract import compute_cmvn_stats, stats_bytes, write_speaker_cmvn
from speechser.features.front_end import FrontEnd
from speechser.io.datadir import read_kv, read_spk2utt, subset_data_dir, write_data_dir
from speechser.knn.datastore import KNNDatastore, interpolate
from speechser.data.folds import check_experiment_folds
from speechser.pack.archive import PackError, PackUnsupported, write_archive
from speechser.pack.frontend import extract_features
from speechser.pack.meta import check_labels
from speechser.pack.packed import MODEL_FILE, PackedModel, common_members
from speechser.tasks.experiment_dir import (
    CMVN_FILE,
    INFERENCE_DIR,
    POOLED_CMVN_RECORD,
    VECTOR_CMVN_RECORD,
    VECTOR_FRONT_END_RECORD,
    recorded,
    recorded_front_end,
)
from speechser.tasks.ser import SERExperiment, SEROutputs, collect_ser_outputs, load_experiment

#: A speaker whose statistics cover fewer frames is normalized with the training set's pooled statistics
#: instead (one utterance's functionals are a single frame: its own mean, all-zero features after CMVN).
MIN_SPEAKER_FRAMES = 10
KNN_EMBEDDINGS = "knn.embeddings.ark"
VECTOR_FRONT_END_FILE = "vectors.frontend.json"
VECTOR_CMVN_FILE = "vectors.cmvn.ark"
KNN_LABELS = "knn.labels.txt"


def _knn_members(knn_dir: Path, labels: List[str]) -> tuple:
    """The datastore of a k-NN decode directory (:func:`speechser.knn.decode_ser.knn_decode_ser`) as members,
    and its tuned parameters."""
    params_path = knn_dir / "knn_params.json"
    scp = knn_dir / "datastore/embeddings.scp"
    if not params_path.is_file() or not scp.is_file():
        raise PackError(f"{knn_dir}: no knn_params.json and datastore/ (run the k-NN decoding first)")
    params = json.loads(params_path.read_text())
    table = read_kv(knn_dir / "datastore/utt2label")
    entries = read_kv(scp)
    keys = list(entries)
    index = {c: i for i, c in enumerate(labels)}
    emb = np.stack([np.asarray(kaldiio.load_mat(v)) for v in entries.values()]).astype(np.float32)
    if emb.shape[0] != int(params.get("datastore_size", emb.shape[0])):
        raise PackError(f"{scp}: {emb.shape[0]} stored embeddings, but the datastore that was tuned had "
                        f"{params['datastore_size']} (training and validation sets sharing utterance keys?)")
    members = {KNN_EMBEDDINGS: stats_bytes(emb),
               KNN_LABELS: "".join(f"{index[table[k]]}\n" for k in keys).encode()}
    return members, {k: params[k] for k in ("beta", "k", "temperature", "backend")}


def pack_ser(exp_dir: Path | str, out: Path | str, checkpoint: Optional[str] = None, corpus: str = "",
             results: Optional[Path | str] = None, min_duration: float = 0.5,
             knn_dir: Optional[Path | str] = None) -> Path:
    """Pack the SER experiment ``exp_dir`` (its ``checkpoint``, default the averaged else best model) into
    ``out``; ``results``: a scores file to carry as ``RESULTS.md``; ``min_duration``: the recipe's stage-2
    minimum (shorter audio is skipped at inference too). The front-end is read from the settings beside the
    training set's feature archives, which must still exist when packing. ``knn_dir``: the experiment's k-NN
    decode directory, whose datastore and tuned parameters the archive then carries."""
    check_experiment_folds(exp_dir)  # features rebuilt since the folds were made: refused, naming the stage
    ser = load_experiment(exp_dir, checkpoint, device="cpu")
    conf = ser.conf
    front_end = recorded_front_end(exp_dir)
    conf.model.labels = list(ser.labels)
    vector_members = _vector_members(exp_dir, conf, front_end) if conf.data.vector_dir else {}
    members = common_members(conf, exp_dir, ser.checkpoint, front_end)
    members.update(vector_members)
    members["labels.txt"] = "".join(f"{c}\n" for c in ser.labels).encode()
    if conf.data.cmvn_type == "global":
        members[CMVN_FILE] = Path(conf.data.cmvn_stats).read_bytes()
    elif conf.data.cmvn_type == "speaker":
        members[CMVN_FILE] = recorded(exp_dir, POOLED_CMVN_RECORD).read_bytes()
    if results is not None:
        members["RESULTS.md"] = Path(results).read_bytes()
    knn_params = None
    if knn_dir is not None:
        knn_members, knn_params = _knn_members(Path(knn_dir), list(ser.labels))
        members.update(knn_members)
    scores_path = Path(exp_dir) / "decode_test" / "scores.json"
    meta: Dict[str, Any] = {
        "task": "ser", "model": conf.model.name, "labels": list(ser.labels), "cmvn_type": conf.data.cmvn_type,
        "min_speaker_frames": MIN_SPEAKER_FRAMES, "min_duration": float(min_duration), "corpus": corpus,
        "source": str(Path(exp_dir).resolve()), "checkpoint": ser.checkpoint.name, "front_end": front_end.to_json(),
        "test_scores": json.loads(scores_path.read_text()) if scores_path.is_file() else None, "knn": knn_params,
    }
    path = write_archive(out, members, meta)
    logging.info("packed %s (%s) into %s", exp_dir, ser.checkpoint.name, path)
    return path


def _vector_members(exp_dir: Path | str, conf: Any, front_end: Any) -> Dict[str, bytes]:
    """Early fusion: the front-end of ``data.vector_dir`` and the pooled statistics of the training set's
    vectors (the training utterances only: the vector directory holds every fold's test speakers too), as
    training recorded them in the experiment."""
    vec_front = recorded_front_end(exp_dir, VECTOR_FRONT_END_RECORD)
    if vec_front.sample_rate != front_end.sample_rate:
        raise PackUnsupported(f"{exp_dir}: the frames ({front_end.sample_rate} Hz) and the vectors "
                              f"({vec_front.sample_rate} Hz) were made at different rates")
    if conf.data.cmvn_type not in ("speaker", "none"):
        raise PackUnsupported(f"{exp_dir}: utterance vectors with cmvn_type '{conf.data.cmvn_type}'")
    if not (Path(exp_dir) / INFERENCE_DIR / VECTOR_CMVN_RECORD).is_file():
        raise PackError(f"{conf.data.vector_dir}: no vectors for the training set {conf.data.train_dir} "
                        f"(training recorded none in {Path(exp_dir) / INFERENCE_DIR})")
    return {VECTOR_FRONT_END_FILE: (json.dumps(vec_front.to_json(), indent=1) + "\n").encode(),
            VECTOR_CMVN_FILE: recorded(exp_dir, VECTOR_CMVN_RECORD).read_bytes()}


@dataclass
class LabelledSet:
    """What :meth:`PackedSER.label_data_dir` gives: the model's outputs (``post (N, C)``, rows in ``keys``
    order) and the utterances skipped with their reasons."""

    outputs: SEROutputs
    skipped: Dict[str, str]


class PackedSER(PackedModel):
    """A packed SER model, checked and loaded."""

    task = "ser"

    def __init__(self, archive: Path | str, device: str = "auto") -> None:
        super().__init__(archive)
        try:
            self.ser: SERExperiment = load_experiment(self.dir, MODEL_FILE, device)
        except (OSError, ValueError, KeyError, RuntimeError) as err:
            raise self.loading_error(err) from None
        labels_txt = self.dir / "labels.txt"
        self.labels: List[str] = check_labels(self.archive, {
            "config.yaml": list(self.ser.labels),
            "labels.txt": labels_txt.read_text(encoding="utf-8").split() if labels_txt.is_file() else None,
            "meta.json": self.meta.get("labels")})
        self.cmvn_type = self.ser.conf.data.cmvn_type
        self.min_speaker_frames = int(self.meta.get("min_speaker_frames", MIN_SPEAKER_FRAMES))
        #: Early fusion: the front-end of the utterance vectors beside the frames.
        self.vector_front_end: Optional[FrontEnd] = None
        if (self.dir / VECTOR_FRONT_END_FILE).is_file():
            try:
                self.vector_front_end = FrontEnd.from_json(json.loads((self.dir / VECTOR_FRONT_END_FILE).read_text()))
            except ValueError as err:
                raise self.loading_error(err) from None
        #: The k-NN datastore and its tuned parameters, where the archive carries them.
        self.knn: Optional[Dict[str, Any]] = self.meta.get("knn")
        self.store: Optional[KNNDatastore] = None
        if self.knn:
            emb = np.array(kaldiio.load_mat(str(self.dir / KNN_EMBEDDINGS)))  # a writable copy
            rows = [int(x) for x in (self.dir / KNN_LABELS).read_text().split()]
            self.store = KNNDatastore(emb, rows, len(self.labels), str(self.knn.get("backend", "torch")))

    def _speaker_cmvn(self, feats_dir: Path, pooled_file: str = CMVN_FILE) -> None:
        """Per-speaker statistics of ``feats_dir`` into its ``cmvn.scp``; a speaker with too few frames gets
        the packed training statistics ``pooled_file`` (logged and counted)."""
        stats = compute_cmvn_stats(feats_dir, per_speaker=True)
        pooled = kaldiio.load_mat(str(self.dir / pooled_file))
        few = sorted(s for s, st in stats.items() if st[0, -1] < self.min_speaker_frames)
        if few:
            # one row of features per file (utterance functionals): the frames counted are files; say so
            per_spk = read_spk2utt(feats_dir / "spk2utt")
            unit = "files" if all(int(stats[s][0, -1]) == len(per_spk.get(s, [])) for s in few) else "frames"
            logging.warning("%s: %d speaker(s) with fewer than %d %s (first '%s') normalized with the training "
                            "set's statistics instead of their own", feats_dir.name, len(few), self.min_speaker_frames,
                            unit, few[0])
        for spk in few:
            stats[spk] = pooled
        write_speaker_cmvn(feats_dir, stats)

    def _vectors(self, feats_dir: Path, work_dir: Path, skipped: Dict[str, str]) -> Tuple[Path, Path]:
        """Early fusion: the vectors' front-end over the audio stage 2 formatted (``work_dir/formatted``) into
        ``work_dir/vectors`` (``feats.scp``, ``utt2spk``, ``spk2utt``, per-speaker ``cmvn.scp``). An utterance
        the vectors' front-end cannot read joins ``skipped`` and is left out of the frames too (a subset of
        ``feats_dir``). Returns the frames' and the vectors' directories."""
        assert self.vector_front_end is not None
        kept = read_kv(feats_dir / "utt2spk")
        prefix = work_dir / "raw_vectors"
        extract_features(self.vector_front_end, work_dir / "formatted", prefix, keys=list(kept))
        have = read_kv(f"{prefix}.scp")
        lost = {u: f"no utterance vector: {r}" for u, r in read_kv(f"{prefix}.skipped", allow_empty_value=True).items()}
        lost.update({u: "no utterance vector" for u in kept if u not in have and u not in lost})
        if lost:
            skipped.update(lost)
            kept = {u: s for u, s in kept.items() if u not in lost}
            if not kept:
                raise PackError(f"{feats_dir}: no utterance has both frames and an utterance vector")
            subset_data_dir(feats_dir, work_dir / "feats_with_vectors", utt_list=list(kept))
            feats_dir = work_dir / "feats_with_vectors"
        vec_dir = write_data_dir(work_dir / "vectors", {"feats.scp": {u: have[u] for u in kept}, "utt2spk": kept})
        if self.cmvn_type == "speaker":
            self._speaker_cmvn(vec_dir, VECTOR_CMVN_FILE)
        return feats_dir, vec_dir

    def label_data_dir(self, data_dir: Path | str, work_dir: Path | str) -> LabelledSet:
        """Features, CMVN and posteriors of every utterance of ``data_dir`` (``wav.scp``, ``utt2spk``, optional
        ``segments``; no labels needed); ``work_dir`` holds the features."""
        feats_dir, skipped = self.featurize(data_dir, work_dir)
        if self.vector_front_end is not None:
            feats_dir, vec_dir = self._vectors(feats_dir, Path(work_dir), skipped)
            self.ser.conf.data.vector_dir = str(vec_dir)
        if self.cmvn_type == "speaker":
            self._speaker_cmvn(feats_dir)
        out = collect_ser_outputs(self.ser, feats_dir, require_labels=False)
        if self.store is not None and self.knn is not None:
            p_knn = self.store.distribution(out.emb, int(self.knn["k"]), float(self.knn["temperature"]))
            out.post = interpolate(out.post, p_knn, float(self.knn["beta"]))
        return LabelledSet(out, skipped)
