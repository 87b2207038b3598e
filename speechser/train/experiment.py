"""The bookkeeping of an experiment directory around a training run.

* A lock (``exp/.lock``, an exclusive ``flock`` holding pid, host and start time): a second
  training into the same directory is refused, naming the holder; the lock of a process that
  died is taken over with a warning. Under DDP only rank 0 locks.
* What the run depends on is stored beside ``config.yaml``: ``data_fingerprint.json`` (each data
  directory's path, utterance count and a SHA-256 of its sorted utterance keys; for a fold part also
  a SHA-256 of its record of the feature archives, so that features rebuilt since are a difference).
* Resuming checks the config and the data against the stored ones and refuses a difference,
  naming the keys (``--trainer.allow_config_change true`` accepts it; the stored config is then
  replaced only once the checkpoint has loaded). A run that starts over (``--trainer.resume false``)
  in a directory holding checkpoints first moves the old run into ``exp/backup.<time>/``.
"""

from __future__ import annotations

import dataclasses
import datetime
import errno
import hashlib
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from speechser.config import ConfigError, dump_config, read_yaml, to_dict
from speechser.data.folds import FEATS_FINGERPRINT
from speechser.io.atomic import write_json_atomic
from speechser.io.process import pid_alive
from speechser.train.distributed import DistInfo

FINGERPRINT = "data_fingerprint.json"
#: Keys that only say how to run, not what is trained: they may differ on resume. ``trainer.max_epochs``
#: is among them because extending a finished run (``--trainer.max_epochs 40`` after 32) is the usual
#: reason to resume; the change is logged.
RUN_ONLY_KEYS = frozenset({
    "trainer.device", "trainer.log_interval", "trainer.resume", "trainer.allow_config_change",
    "trainer.init_param", "data.num_workers", "trainer.max_epochs", "trainer.find_unused_parameters", "trainer.compile",
})


class ExperimentError(RuntimeError):
    """A training refused for the state of its experiment directory (in use, or not resumable as asked)."""


# -- lock ------------------------------------------------------------------
def _describe(holder: Dict[str, Any]) -> str:
    if not holder:
        return "holder unknown"
    return f"pid {holder.get('pid')} on host {holder.get('host')}, started {holder.get('started')}"


class ExperimentLock:
    """An exclusive lock on an experiment directory (see the module docstring)."""

    def __init__(self, exp_dir: Path | str) -> None:
        self.exp_dir = Path(exp_dir)
        self.path = self.exp_dir / ".lock"
        self.fd: Optional[int] = None

    def _holder(self) -> Dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def _refuse(self, holder: Dict[str, Any]) -> ExperimentError:
        return ExperimentError(
            f"{self.exp_dir} is in use by another training ({_describe(holder)}; lock file {self.path}): two "
            "trainings in one experiment directory would overwrite each other's checkpoints. Wait for it to "
            "end or stop it, or train into another --exp-dir.")

    def acquire(self) -> None:
        import fcntl

        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                holder = self._holder()
                if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise self._refuse(holder) from None
                # A file system without flock: fall back to the holder's pid on this host.
                if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int) \
                        and holder["pid"] != os.getpid() and pid_alive(holder["pid"]):
                    os.close(fd)
                    raise self._refuse(holder) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the file was removed by its holder in between: lock the new one
        holder = self._holder()
        if holder:
            logging.warning("taking over the stale lock %s (%s): that training is gone (a crash or a kill)", self.path, _describe(holder))
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": datetime.datetime.now().isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(info) + "\n").encode())
        os.fsync(fd)
        self.fd = fd

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self.fd)
            self.fd = None


# -- what a run depends on -------------------------------------------------
def _key_file(data_dir: Path) -> Optional[Path]:
    for name in ("feats.scp", "wav.scp", "utt2spk"):
        if (data_dir / name).is_file():
            return data_dir / name
    return None


def data_fingerprint(conf: Any) -> Dict[str, Dict[str, Any]]:
    """``{"data.train_dir": {"path", "file", "n_utts", "keys_sha256"}, ...}`` for the data directories
    of ``conf.data`` (every ``*_dir`` field that names a directory holding a key list)."""
    out: Dict[str, Dict[str, Any]] = {}
    data = getattr(conf, "data", None)
    if data is None or not dataclasses.is_dataclass(data):
        return out
    for f in dataclasses.fields(data):
        value = getattr(data, f.name)
        if not (f.name.endswith("_dir") and isinstance(value, str) and value):
            continue
        key_file = _key_file(Path(value))
        if key_file is None:
            continue
        keys = sorted(ln.split(maxsplit=1)[0] for ln in key_file.read_text(encoding="utf-8", errors="replace")
                      .splitlines() if ln.strip())
        out[f"data.{f.name}"] = {
            "path": str(Path(value).resolve()), "file": key_file.name, "n_utts": len(keys),
            "keys_sha256": hashlib.sha256("\n".join(keys).encode()).hexdigest(),
        }
        record = Path(value) / FEATS_FINGERPRINT
        if record.is_file():  # a fold part: the feature archives it points into, as recorded when it was made
            out[f"data.{f.name}"]["feats_archives_sha256"] = hashlib.sha256(record.read_bytes()).hexdigest()
    return out


def _flatten(d: Any, prefix: str = "") -> Dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: Dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            out.update(_flatten(v, key))
        else:
            out[key] = v
    return out


def config_differences(old: Dict[str, Any], new: Dict[str, Any]) -> List[str]:
    """``key: old -> new`` for each key that differs; keys that only say how to run are left out, and
    so are keys the old config lacks (added to the code since)."""
    a, b = _flatten(old), _flatten(new)
    diffs = []
    for key in sorted(set(a) | set(b)):
        if key in RUN_ONLY_KEYS or key not in a:
            continue
        if key not in b:
            diffs.append(f"{key}: {a[key]!r} -> (no such key)")
        elif a[key] != b[key]:
            diffs.append(f"{key}: {a[key]!r} -> {b[key]!r}")
    return diffs


def data_differences(old: Dict[str, Any], new: Dict[str, Any]) -> List[str]:
    diffs = []
    for key in sorted(set(old) & set(new)):
        o, n = old[key], new[key]
        if o.get("keys_sha256") != n.get("keys_sha256"):
            diffs.append(f"{key}: the utterances of {n.get('path')} differ from those the run started with "
                         f"({o.get('n_utts')} utterances in {o.get('path')}, keys sha256 "
                         f"{str(o.get('keys_sha256'))[:12]}; now {n.get('n_utts')}, {str(n.get('keys_sha256'))[:12]})")
        elif "feats_archives_sha256" in o and o["feats_archives_sha256"] != n.get("feats_archives_sha256"):
            diffs.append(f"{key}: the features of {n.get('path')} were rebuilt (and the folds made again) since the "
                         f"run started ({FEATS_FINGERPRINT} differs): its checkpoints were trained on other features")
        elif o.get("path") != n.get("path"):
            logging.warning("%s moved from %s to %s (same utterances)", key, o.get("path"), n.get("path"))
    for key in sorted(set(old) - set(new)):
        diffs.append(f"{key}: {old[key].get('path')} is no longer given or has no key list")
    return diffs


# -- the experiment ----------------------------------------------------------
def _set_aside(exp_dir: Path) -> Optional[Path]:
    """Move a previous run's files (checkpoints, config, stats, decodings) into ``exp/backup.<time>/``."""
    if not any(exp_dir.glob("*.pt")):
        return None
    backup = exp_dir / f"backup.{time.strftime('%Y%m%d-%H%M%S')}"
    n = 1
    while backup.exists():
        n += 1
        backup = exp_dir / f"backup.{time.strftime('%Y%m%d-%H%M%S')}.{n}"
    backup.mkdir()
    for p in sorted(exp_dir.iterdir()):
        if p.name in ("train.log", ".lock") or p.name.startswith("backup."):
            continue
        p.rename(backup / p.name)
    return backup


def _remap_init_param(specs: List[str], exp_dir: Path, backup: Path) -> List[str]:
    """``init_param`` entries naming files just moved into ``backup`` point to their new place."""
    out = []
    for spec in specs:
        path, sep, rest = spec.partition(":")
        p = Path(path)
        if not p.exists() and p.resolve().parent == exp_dir.resolve() and (backup / p.name).is_file():
            path = str(backup / p.name)
        out.append(path + sep + rest)
    return out


@dataclasses.dataclass
class Experiment:
    """An experiment directory held by this run (see :func:`open_experiment`)."""

    dir: Path
    dist: DistInfo
    lock: Optional[ExperimentLock] = None
    #: The config and fingerprint to store once the checkpoint has loaded (an accepted change on resume).
    pending: Optional[tuple] = None

    def resumed(self) -> None:
        """Called by the trainer once ``checkpoint.pt`` has loaded into the model."""
        if self.pending is not None and self.dist.is_main:
            conf, fingerprint = self.pending
            dump_config(conf, self.dir / "config.yaml")
            write_json_atomic(self.dir / FINGERPRINT, fingerprint)
            logging.warning("%s/config.yaml now holds the resumed run's config", self.dir)
        self.pending = None

    def close(self) -> None:
        if self.lock is not None:
            self.lock.release()

    def __enter__(self) -> "Experiment":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()  # the lock is released however training ends


def open_experiment(conf: Any, exp_dir: Path, dist: DistInfo) -> Experiment:
    """Lock ``exp_dir`` (rank 0), check that a resume is compatible, store config and data fingerprint
    (see the module docstring). Raises :class:`ExperimentError` for a refused run."""
    exp_dir.mkdir(parents=True, exist_ok=True)
    exp = Experiment(exp_dir, dist)
    if dist.is_main:
        exp.lock = ExperimentLock(exp_dir)
        exp.lock.acquire()
    try:
        fingerprint = data_fingerprint(conf)
        tconf = conf.trainer
        ckpt = exp_dir / "checkpoint.pt"
        if tconf.resume and ckpt.is_file():
            problems: List[str] = []
            old_conf_path = exp_dir / "config.yaml"
            if old_conf_path.is_file():
                try:
                    problems += config_differences(read_yaml(old_conf_path), to_dict(conf))
                except ConfigError as err:
                    problems.append(f"the stored config cannot be read: {err}")
            fp_path = exp_dir / FINGERPRINT
            if fp_path.is_file():
                try:
                    problems += data_differences(json.loads(fp_path.read_text()), fingerprint)
                except ValueError as err:
                    problems.append(f"{fp_path} cannot be read: {err}")
            if problems and not tconf.allow_config_change:
                raise ExperimentError(
                    f"{exp_dir} holds a run (checkpoint.pt) started with another config or data; resuming it "
                    f"with this one would mix the two. Differences:\n  " + "\n  ".join(problems) + "\n"
                    f"Nothing in {exp_dir} was changed. Train into a new --exp-dir; or start over here with "
                    "--trainer.resume false (the old run is moved into a backup.<time>/ directory); or resume "
                    "anyway with --trainer.allow_config_change true.")
            run_changes = []
            if old_conf_path.is_file() and not problems:
                a, b = _flatten(read_yaml(old_conf_path)), _flatten(to_dict(conf))
                run_changes = [f"{k}: {a[k]!r} -> {b.get(k)!r}" for k in sorted(RUN_ONLY_KEYS)
                               if k in a and a[k] != b.get(k)]
            if problems:
                logging.warning("resuming %s despite differences (trainer.allow_config_change):\n  %s", exp_dir,
                                "\n  ".join(problems))
                exp.pending = (conf, fingerprint)
            elif run_changes:  # e.g. more epochs: config.yaml is updated once the checkpoint has loaded
                logging.info("resuming %s with: %s", exp_dir, "; ".join(run_changes))
                exp.pending = (conf, fingerprint)
            elif not old_conf_path.is_file():
                exp.pending = (conf, fingerprint)  # lost: stored again once the checkpoint has loaded
            elif dist.is_main and not fp_path.is_file():
                write_json_atomic(fp_path, fingerprint)  # an experiment from before fingerprints
        elif dist.is_main:
            backup = _set_aside(exp_dir)
            if backup is not None:
                logging.warning("starting over in %s: the previous run (checkpoints, config, stats) was moved "
                                "into %s", exp_dir, backup)
                conf.trainer.init_param = _remap_init_param(list(tconf.init_param), exp_dir, backup)
            dump_config(conf, exp_dir / "config.yaml")
            write_json_atomic(exp_dir / FINGERPRINT, fingerprint)
    except BaseException:
        exp.close()
        raise
    return exp
