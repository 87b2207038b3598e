"""What every packed model shares: the members written beside the task's own (resolved config, weights,
front-end, local pretrained models), loading an archive back, and featurizing a user's data directory as
the recipe's stages 2 and 3 did.

An archive's ``meta.json`` records ``task`` (``ser`` or ``asr``), the recipe's ``min_duration`` (shorter
audio is skipped at inference too) and ``front_end``; the files of each local pretrained-model directory
(SSL, text encoders) the config names are members ``pretrained.<i>.<file>``, and the packed config names
them ``packed:pretrained.<i>`` (set back to a real folder when the archive is loaded).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Tuple

import yaml

from speechser.config import read_yaml, to_dict
from speechser.features.front_end import FrontEnd
from speechser.io.datadir import read_kv, utt2spk_to_spk2utt, write_kv, write_spk2utt
from speechser.io.format import NoUtteranceLeft, format_data_dir
from speechser.pack.archive import PackError, PackUnsupported, read_archive
from speechser.pack.frontend import extract_features
from speechser.pack.inputs import NothingToLabel
from speechser.pack.meta import check_meta

MODEL_FILE = "model.pt"
FRONT_END_FILE = "frontend.json"
#: The members (``frontend_model.<file>``) holding an ``ssl`` front-end's encoder.
FRONT_END_MODEL = "frontend_model"
#: The config key of SSL and text encoders' pretrained models, and how a packed config names their copy.
PRETRAINED_KEY = "name_or_path"
PACKED_PREFIX = "packed:"


def experiment_task(exp_dir: Path | str) -> str:
    """What ``exp_dir`` holds: ``ser_fusion`` (a fused fold: ``fusion.json``), ``ser`` (a config whose model
    records its labels) or ``asr`` (its vocabulary size)."""
    if (Path(exp_dir) / "fusion.json").is_file():
        return "ser_fusion"
    model = read_yaml(Path(exp_dir) / "config.yaml").get("model", {})
    if "labels" in model:
        return "ser"
    if "vocab_size" in model:
        return "asr"
    raise PackError(f"{exp_dir}/config.yaml: neither an SER nor an ASR model (give --task)")


def common_members(conf: Any, exp_dir: Path | str, checkpoint: Path, front_end: FrontEnd) -> Dict[str, bytes]:
    """``config.yaml`` (with packed pretrained-model paths), ``model.pt``, ``frontend.json`` and the
    pretrained-model files of an experiment's resolved config ``conf``."""
    table = to_dict(conf)
    members = _pack_pretrained(table["model"], exp_dir)
    members["config.yaml"] = yaml.safe_dump(table, sort_keys=False, allow_unicode=True).encode()
    members[MODEL_FILE] = Path(checkpoint).read_bytes()
    if front_end.kind == "ssl":  # the front-end's own encoder travels with the archive
        where = Path(front_end.options["model"])
        if not where.is_dir() or any(f.is_dir() for f in where.iterdir()):
            raise PackUnsupported(f"{exp_dir}: its features come from the encoder '{where}', which is not a local "
                                  "directory of files (a hub name?): packing copies local directories only")
        for f in sorted(where.iterdir()):
            members[f"{FRONT_END_MODEL}.{f.name}"] = f.read_bytes()
        front_end = FrontEnd("ssl", {**front_end.options, "model": PACKED_PREFIX + FRONT_END_MODEL})
    members[FRONT_END_FILE] = (json.dumps(front_end.to_json(), indent=1) + "\n").encode()
    return members


def _unpack_front_end_model(root: Path, front_end: FrontEnd) -> FrontEnd:
    """An ``ssl`` front-end whose encoder is packed: its files restored in ``root/frontend_model`` and the
    front-end pointed at that folder."""
    if front_end.kind != "ssl" or front_end.options.get("model") != PACKED_PREFIX + FRONT_END_MODEL:
        return front_end
    target = root / FRONT_END_MODEL
    target.mkdir(exist_ok=True)
    for member in list(root.glob(f"{FRONT_END_MODEL}.*")):
        member.replace(target / member.name[len(FRONT_END_MODEL) + 1:])
    return FrontEnd("ssl", {**front_end.options, "model": str(target)})


def _pretrained_refs(tree: Any) -> List[Dict[str, Any]]:
    """Every mapping of a config tree with a non-empty ``name_or_path`` (SSL and text encoders)."""
    if isinstance(tree, dict):
        found = [tree] if isinstance(tree.get(PRETRAINED_KEY), str) and tree[PRETRAINED_KEY] else []
        return found + [m for v in tree.values() for m in _pretrained_refs(v)]
    if isinstance(tree, list):
        return [m for v in tree for m in _pretrained_refs(v)]
    return []


def _pack_pretrained(model_section: Dict[str, Any], exp_dir: Path | str) -> Dict[str, bytes]:
    """The files of each local pretrained-model directory the model section names, as members
    ``pretrained.<i>.<file>``; the section's paths become ``packed:pretrained.<i>`` (set back at loading).
    A hub name cannot be packed (nothing is downloaded): the message says what to do instead."""
    members: Dict[str, bytes] = {}
    index: Dict[str, int] = {}
    for ref in _pretrained_refs(model_section):
        where = Path(ref[PRETRAINED_KEY])
        if str(where) not in index:
            if not where.is_dir():
                raise PackUnsupported(f"{exp_dir}: the model loads '{where}', which is not a local directory (a hub "
                                      "name?): packing copies pretrained models from local directories only (save it "
                                      "with save_pretrained and give that directory as name_or_path)")
            if any(f.is_dir() for f in where.iterdir()):
                raise PackUnsupported(f"{where}: a pretrained-model directory with sub-folders cannot be packed")
            index[str(where)] = i = len(index)
            for f in sorted(where.iterdir()):
                members[f"pretrained.{i}.{f.name}"] = f.read_bytes()
        ref[PRETRAINED_KEY] = f"{PACKED_PREFIX}pretrained.{index[str(where)]}"
    return members


def _unpack_pretrained(root: Path) -> None:
    """Rebuild each packed pretrained-model directory under ``root`` and point ``config.yaml`` at it."""
    table = read_yaml(root / "config.yaml")
    refs = _pretrained_refs(table["model"])
    for ref in refs:
        value = str(ref[PRETRAINED_KEY])
        if not value.startswith(PACKED_PREFIX):
            raise PackError(f"config.yaml names the pretrained model '{value}', which is not in the archive")
        stem = value[len(PACKED_PREFIX):]
        target = root / stem.replace(".", "_")
        target.mkdir(exist_ok=True)
        for member in list(root.glob(f"{stem}.*")):
            member.replace(target / member.name[len(stem) + 1:])
        ref[PRETRAINED_KEY] = str(target)
    if refs:
        (root / "config.yaml").write_text(yaml.safe_dump(table, sort_keys=False, allow_unicode=True),
                                          encoding="utf-8")


class PackedArchive:
    """An archive of ``task``, checked and extracted into a temporary folder (``dir``) that lives as long as
    the object (:meth:`close` removes it); subclasses load what it holds from ``dir``."""

    task = ""

    def __init__(self, archive: Path | str) -> None:
        self.archive = Path(archive)
        self._tmp = tempfile.TemporaryDirectory(prefix=f"speechser-{self.task}-")
        self.dir = Path(self._tmp.name)
        self.meta = read_archive(self.archive, self.dir)
        check_meta(self.meta, self.archive)
        if self.meta.get("task") != self.task:
            raise PackError(f"{self.archive}: a '{self.meta.get('task')}' archive, not a '{self.task}' model")

    def close(self) -> None:
        self._tmp.cleanup()


class PackedModel(PackedArchive):
    """One model's archive: also its front-end and its pretrained-model folders, restored in ``dir``."""

    def __init__(self, archive: Path | str) -> None:
        super().__init__(archive)
        try:
            self.front_end = _unpack_front_end_model(
                self.dir, FrontEnd.from_json(json.loads((self.dir / FRONT_END_FILE).read_text())))
            _unpack_pretrained(self.dir)
        except (OSError, ValueError, KeyError) as err:
            raise self.loading_error(err) from None
        self.min_duration = float(self.meta.get("min_duration", 0.0))

    def loading_error(self, err: BaseException) -> PackError:
        return PackError(f"{self.archive}: its members pass their checksums but the model cannot be loaded: {err}")

    def featurize(self, data_dir: Path | str, work_dir: Path | str) -> Tuple[Path, Dict[str, str]]:
        """The recipe's stage 2 (the front-end's rate, mono 16-bit, segments cut out, audio shorter than
        ``min_duration``, empty or unreadable skipped) and stage 3 (the packed front-end) over ``data_dir``
        (``wav.scp``, ``utt2spk``, optional ``segments``; no labels) into ``work_dir/feats``, a data directory
        with ``feats.scp``, ``utt2num_frames``, ``utt2spk``, ``spk2utt`` and ``wav.scp``. Returns it and the
        utterances skipped with their reasons."""
        data_dir, work_dir = Path(data_dir), Path(work_dir)
        if work_dir.exists() and (not work_dir.is_dir() or any(work_dir.iterdir())):
            raise PackError(f"{work_dir}: exists and is not an empty folder; give a work folder that does not exist "
                            "yet (it is filled with formatted audio and features; nothing already there is removed)")
        feats_dir = work_dir / "feats"
        feats_dir.mkdir(parents=True)
        formatted = work_dir / "formatted"
        try:
            report = format_data_dir(data_dir, formatted, work_dir / "wav", self.front_end.sample_rate,
                                     self.min_duration, skip_truncated=True, skip_unreadable=True)
        except NoUtteranceLeft as err:
            raise NothingToLabel(err.skipped) from None
        prefix = work_dir / "raw_feats"
        extract_features(self.front_end, formatted, prefix)
        skipped = {**report.skipped(), **read_kv(f"{prefix}.skipped", allow_empty_value=True)}
        lengths = read_kv(f"{prefix}.num_frames")
        if not lengths:
            raise NothingToLabel(skipped)
        kept = {u: s for u, s in read_kv(formatted / "utt2spk").items() if u in lengths}
        write_kv(feats_dir / "utt2spk", kept)
        write_spk2utt(feats_dir / "spk2utt", utt2spk_to_spk2utt(kept))
        write_kv(feats_dir / "feats.scp", read_kv(f"{prefix}.scp"))
        write_kv(feats_dir / "utt2num_frames", lengths)
        shutil.copyfile(formatted / "wav.scp", feats_dir / "wav.scp")
        return feats_dir, skipped
