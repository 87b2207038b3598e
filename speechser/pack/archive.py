"""The packed-model archive: a tar file of named members and a ``meta.json`` that lists each with its sha256.

Layout (every member at the top level, no folders, no links):

    meta.json     {"format": "speechser-pack", "format_version": 1, "task": "ser", "speechser_version": ...,
                   "torch_version": ..., "created": ..., "files": {"config.yaml": "<sha256>", ...}, ...}
    config.yaml   the experiment's resolved config
    model.pt      the weights (the averaged model where the trainer wrote one)
    ...           what the task adds (front-end, CMVN statistics, labels, tokens)

:func:`read_archive` refuses a damaged archive (a member whose checksum differs, a listed member missing,
an unlisted one, a path that leaves the archive, a link, a compressed or sparse member, a member larger than
the archive), an archive of another format or of an unknown format version, and a ``meta.json`` whose fields
that steer inference are out of range (:mod:`speechser.pack.meta`), and says which; another speechser or
torch version only warns, since the weights still load. ``model.pt`` is read as tensors only
(:func:`speechser.train.checkpoint.load_checkpoint`): no member is ever unpickled into code.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import logging
import os
import platform
import stat
import tarfile
from pathlib import Path
from typing import IO, Any, Dict, Mapping

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
    if out.exists() or out.is_symlink():
        try:
            archive_task(out)
        except PackError:
            raise PackError(f"--out {out}: exists and is not a packed model (a checkpoint, a config or another "
                            "input?): speechser-pack replaces only an earlier archive; give a new file name, e.g. "
                            "exp/<tag>/packed/model.tar") from None
        if out.is_symlink():
            raise PackError(f"--out {out}: a symbolic link; give the archive's own path")
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


#: What an uncompressed archive may not begin with: the packer never compresses, and a compressed member
#: can claim any size after decompression.
_COMPRESSED_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd"}
#: Caps on what an archive's headers may declare: members, and the size of meta.json.
MAX_MEMBERS = 10000
MAX_META_BYTES = 1 << 20


def _regular_file(path: Path, what: str) -> os.stat_result:
    """``path``'s status, if it is a regular file (after links); a device, FIFO or folder is a
    :class:`PackError` (reading one would hang or never end)."""
    try:
        st = path.stat()
    except OSError as err:
        raise PackError(f"{path}: no such file ({err.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        kind = ("a folder" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a regular file")
        raise PackError(f"{path}: {kind}, not {what}: give the .tar file speechser-pack wrote")
    return st


def _plain_tar(path: Path) -> int:
    """The size of ``path``, a regular file that is not compressed (:class:`PackError` otherwise)."""
    size = _regular_file(path, "a packed model").st_size
    with open(path, "rb") as f:
        head = f.read(8)
    for magic, kind in _COMPRESSED_MAGIC.items():
        if head.startswith(magic):
            raise PackError(f"{path}: a {kind}-compressed file; speechser-pack writes uncompressed .tar archives "
                            "and only those are loaded (decompress it first if you compressed it yourself)")
    return size


def _stream(fh: IO[bytes], out: Path, size: int) -> str:
    """Copy ``size`` bytes of ``fh`` to the new file ``out`` in 1 MiB pieces; returns their sha256."""
    digest = hashlib.sha256()
    with open(out, "wb") as f:
        left = size
        while left:
            piece = fh.read(min(left, 1 << 20))
            if not piece:
                raise EOFError(f"member '{out.name}' ends early")
            digest.update(piece)
            f.write(piece)
            left -= len(piece)
    return digest.hexdigest()


def read_archive(path: Path | str, into: Path | str) -> Dict[str, Any]:
    """Check ``path`` and extract its members into the folder ``into`` (a working folder of the caller);
    returns its ``meta.json`` (whose other fields :func:`speechser.pack.meta.check_meta` checks).

    Only what speechser-pack writes is read: an uncompressed tar of regular top-level files, each no larger
    than the archive itself (a sparse or compressed member could claim gigabytes), streamed to disk."""
    path, into = Path(path), Path(into)
    size = _plain_tar(path)
    into.mkdir(parents=True, exist_ok=True)
    digests: Dict[str, str] = {}
    meta_bytes = b""
    try:
        with tarfile.open(path, "r:") as tar:
            for n, info in enumerate(tar, 1):
                if n > MAX_MEMBERS:
                    raise PackError(f"{path}: more than {MAX_MEMBERS} members (not a speechser archive)")
                if (info.type not in (tarfile.REGTYPE, tarfile.AREGTYPE) or "/" in info.name or "\\" in info.name
                        or info.name.startswith(".") or not info.name):
                    raise PackError(f"{path}: member '{info.name}' is not a plain top-level file (not a speechser "
                                    "archive, or a tampered one)")
                if info.size > size:
                    raise PackError(f"{path}: member '{info.name}' claims {info.size} bytes, more than the "
                                    f"{size}-byte archive holds (damaged or tampered archive)")
                if info.name in digests or (info.name == META and meta_bytes):
                    raise PackError(f"{path}: member '{info.name}' appears twice (tampered archive)")
                fh = tar.extractfile(info)
                assert fh is not None
                if info.name == META:
                    if info.size > MAX_META_BYTES:
                        raise PackError(f"{path}: {META} is {info.size} bytes (at most {MAX_META_BYTES} expected)")
                    meta_bytes = fh.read()
                    continue
                digests[info.name] = _stream(fh, into / info.name, info.size)
    except (tarfile.TarError, EOFError, OSError) as err:
        raise PackError(f"{path}: not a readable tar archive ({err}); damaged or truncated?") from None
    if not meta_bytes:
        raise PackError(f"{path}: no {META} (not an archive written by speechser-pack)")
    try:
        meta = json.loads(meta_bytes)
    except ValueError as err:
        raise PackError(f"{path}: {META} is not valid JSON ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != PACK_FORMAT:
        raise PackError(f"{path}: {META} does not describe a {PACK_FORMAT} archive")
    version = meta.get("format_version")
    if type(version) is not int or not 1 <= version <= PACK_VERSION:
        if type(version) is int and version > PACK_VERSION:
            raise PackError(f"{path}: archive format version {version!r}, but this speechser "
                            f"({speechser.__version__}) reads versions up to {PACK_VERSION}: upgrade speechser")
        raise PackError(f"{path}: {META}: format_version {version!r} is not a version speechser-pack ever wrote "
                        f"(1 to {PACK_VERSION}): a damaged or doctored archive")
    files = meta.get("files")
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise PackError(f"{path}: {META} lists no files")
    for name, digest in sorted(files.items()):
        if name not in digests:
            raise PackError(f"{path}: member '{name}' is listed in {META} but missing (damaged archive)")
        if digests[name] != digest:
            raise PackError(f"{path}: member '{name}' fails its sha256 check (damaged or modified archive)")
    extra = sorted(set(digests) - set(files))
    if extra:
        raise PackError(f"{path}: member '{extra[0]}' is not listed in {META} (modified archive)")
    here = environment()
    for key in ("speechser_version", "torch_version"):
        if meta.get(key) != here[key]:
            logging.warning("%s: packed with %s %s, loaded with %s: results may differ slightly", path,
                            key.replace("_version", ""), meta.get(key), here[key])
    return meta


def archive_task(path: Path | str) -> str:
    """The ``task`` an archive's ``meta.json`` names (read without the checks of :func:`read_archive`, which
    loading runs), to pick the class that loads it."""
    _plain_tar(Path(path))
    try:
        with tarfile.open(path, "r:") as tar:
            first = tar.next()  # speechser-pack writes meta.json first
            if first is None or first.name != META or not first.isreg() or first.size > MAX_META_BYTES:
                raise ValueError(f"the first member is not a {META}")
            fh = tar.extractfile(first)
            meta = json.loads(fh.read()) if fh is not None else {}
    except (tarfile.TarError, EOFError, OSError, ValueError) as err:
        raise PackError(f"{path}: no readable {META} ({err}); not an archive written by speechser-pack?") from None
    return str(meta.get("task", "")) if isinstance(meta, dict) else ""
