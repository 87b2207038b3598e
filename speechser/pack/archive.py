"""The packed-model archive: a tar file of named members and a ``meta.json`` that lists each with its sha256.

Layout (every member at the top level, no folders, no links):

    meta.json     {"format": "speechser-pack", "format_version": 1, "task": "ser", "speechser_version": ...,
                   "torch_version": ..., "created": ..., "files": {"config.yaml": "<sha256>", ...}, ...}
    config.yaml   the experiment's resolved config
    model.pt      the weights (the averaged model where the trainer wrote one)
    ...           what the task adds (front-end, CMVN statistics, labels, tokens)

:func:`read_archive` refuses a damaged archive (a member whose checksum differs, a listed member missing,
an unlisted one, a path that leaves the archive), an archive of another format or of a newer format
version, and says which; another speechser or torch version only warns, since the weights still load.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import logging
import os
import platform
import tarfile
from pathlib import Path
from typing import Any, Dict, Mapping

import torch

import speechser

PACK_FORMAT = "speechser-pack"
PACK_VERSION = 1
META = "meta.json"


class PackError(ValueError):
    """An archive that cannot be used: damaged, foreign, or of a newer format; the message says which."""


class PackUnsupported(PackError):
    """An experiment that packing does not support yet (``speechser-pack`` exits with 3 for it)."""


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def environment() -> Dict[str, str]:
    """The versions a packed model records (and that loading compares)."""
    return {"speechser_version": speechser.__version__, "torch_version": torch.__version__.split("+")[0],
            "python_version": platform.python_version()}


def write_archive(out: Path | str, members: Mapping[str, bytes], meta: Mapping[str, Any]) -> Path:
    """Write ``members`` (name -> content) and ``meta.json`` (``meta`` plus format, versions, date and each
    member's sha256) to ``out`` through a temporary file, so that a crash never leaves half an archive."""
    out = Path(out)
    bad = [n for n in members if n == META or "/" in n or n.startswith(".") or not n]
    if bad:
        raise PackError(f"member name '{bad[0]}' is not allowed in an archive")
    now = datetime.datetime.now().astimezone()
    table = {"format": PACK_FORMAT, "format_version": PACK_VERSION, **environment(),
             "created": now.isoformat(timespec="seconds"), **dict(meta),
             "files": {name: sha256_of(data) for name, data in sorted(members.items())}}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, "w") as tar:
        for name, data in [(META, (json.dumps(table, indent=1) + "\n").encode()), *sorted(members.items())]:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, int(now.timestamp())
            tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, out)
    return out


def read_archive(path: Path | str, into: Path | str) -> Dict[str, Any]:
    """Check ``path`` and extract its members into the folder ``into``; returns its ``meta.json``."""
    path, into = Path(path), Path(into)
    if not path.is_file():
        raise PackError(f"{path}: no such file")
    try:
        with tarfile.open(path, "r") as tar:
            contents: Dict[str, bytes] = {}
            for info in tar.getmembers():
                if not info.isfile() or "/" in info.name or info.name.startswith("."):
                    raise PackError(f"{path}: member '{info.name}' is not a plain top-level file (not a speechser "
                                    "archive, or a tampered one)")
                fh = tar.extractfile(info)
                assert fh is not None
                contents[info.name] = fh.read()
    except (tarfile.TarError, EOFError, OSError) as err:
        raise PackError(f"{path}: not a readable tar archive ({err}); damaged or truncated?") from None
    if META not in contents:
        raise PackError(f"{path}: no {META} (not an archive written by speechser-pack)")
    try:
        meta = json.loads(contents.pop(META))
    except ValueError as err:
        raise PackError(f"{path}: {META} is not valid JSON ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != PACK_FORMAT:
        raise PackError(f"{path}: {META} does not describe a {PACK_FORMAT} archive")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > PACK_VERSION:
        raise PackError(f"{path}: archive format version {version!r}, but this speechser "
                        f"({speechser.__version__}) reads versions up to {PACK_VERSION}: upgrade speechser")
    files = meta.get("files")
    if not isinstance(files, dict):
        raise PackError(f"{path}: {META} lists no files")
    for name, digest in sorted(files.items()):
        if name not in contents:
            raise PackError(f"{path}: member '{name}' is listed in {META} but missing (damaged archive)")
        if sha256_of(contents[name]) != digest:
            raise PackError(f"{path}: member '{name}' fails its sha256 check (damaged or modified archive)")
    extra = sorted(set(contents) - set(files))
    if extra:
        raise PackError(f"{path}: member '{extra[0]}' is not listed in {META} (modified archive)")
    here = environment()
    for key in ("speechser_version", "torch_version"):
        if meta.get(key) != here[key]:
            logging.warning("%s: packed with %s %s, loaded with %s: results may differ slightly", path,
                            key.replace("_version", ""), meta.get(key), here[key])
    into.mkdir(parents=True, exist_ok=True)
    for name, data in contents.items():
        (into / name).write_bytes(data)
    return meta


def archive_task(path: Path | str) -> str:
    """The ``task`` an archive's ``meta.json`` names (read without the checks of :func:`read_archive`, which
    loading runs), to pick the class that loads it."""
    try:
        with tarfile.open(path, "r") as tar:
            fh = tar.extractfile(META)
            meta = json.loads(fh.read()) if fh is not None else {}
    except (KeyError, tarfile.TarError, EOFError, OSError, ValueError) as err:
        raise PackError(f"{path}: no readable {META} ({err}); not an archive written by speechser-pack?") from None
    return str(meta.get("task", "")) if isinstance(meta, dict) else ""
