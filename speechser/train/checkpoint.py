"""Checkpoints: atomic writes, RNG state, n-best bookkeeping, averaging."""

from __future__ import annotations

import errno
import logging
import os
import random
import re
import shutil
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Sequence

import numpy as np
import torch
from numpy._core.multiarray import _reconstruct


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read (damaged, truncated, not a checkpoint) or written (disk full);
    the message names the file and says how to recover."""


#: How torch reports a failed write (its C++ stream writer does not raise OSError).
_WRITE_FAILED = re.compile(r"unexpected pos|file write failed|failed writing|No space left|Disk quota", re.I)


def _is_disk_full(err: BaseException) -> bool:
    if isinstance(err, OSError):
        return err.errno in (errno.ENOSPC, errno.EDQUOT)
    return isinstance(err, RuntimeError) and bool(_WRITE_FAILED.search(str(err)))


def save_atomic(obj: Any, path: Path | str) -> None:
    """``torch.save`` to a temporary file in the same directory, then rename.

    A kill during the write leaves the previous file intact; so does a full disk, which is a
    :class:`CheckpointError` saying so (and where), not torch's ``unexpected pos``.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        torch.save(obj, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:
        if not _is_disk_full(err):
            raise
        try:
            free = f"{shutil.disk_usage(path.parent).free / 2**20:.0f} MiB free"
        except OSError:
            free = "free space unknown"
        kept = f"; the previous {path.name} is kept unchanged" if path.exists() else ""
        raise CheckpointError(f"cannot write {path}: the disk is full (or over quota) on the file system of "
                              f"{path.parent} ({free}){kept}. Free some space there and run the same "
                              f"command again to resume. [{type(err).__name__}: {err}]") from err
    finally:
        tmp.unlink(missing_ok=True)


#: The only non-tensor objects a checkpoint may hold besides Python's plain values (numbers, strings,
#: lists, tuples, dicts): numpy's random state as checkpoints written before it was stored as a tensor
#: kept it (an array of uint32). Nothing else is unpickled: a file that names any other class or function
#: is refused, so a doctored checkpoint cannot run code when it is loaded.
_ALLOWED_GLOBALS = [np.ndarray, np.dtype, type(np.dtype(np.uint32)), _reconstruct]


def _unsafe_globals(path: Path) -> List[str]:
    """The classes and functions ``path`` would import on loading, beyond the allowed ones."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # not a zip checkpoint: torch.load below reports it
        return []
    allowed = {f"{g.__module__}.{g.__qualname__}" for g in _ALLOWED_GLOBALS}
    return [n for n in names if n not in allowed]


def load_checkpoint(path: Path | str) -> Any:
    """``torch.load`` (to CPU, ``weights_only``: tensors and plain Python values only, never code) that
    turns a damaged file (truncated, empty, bit-flipped, not a checkpoint) into a :class:`CheckpointError`
    naming it, and refuses a file that holds any other Python object (a pickled object can run code when
    it is loaded) naming what it holds. torch does not check the CRC-32 its zip format stores for each
    record (a flipped bit in the weights would load silently), so they are checked here first."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                bad = z.testzip()
            if bad is not None:
                raise ValueError(f"record '{bad}' fails its CRC-32 check")
        unsafe = _unsafe_globals(path)
        if unsafe:
            raise CheckpointError(
                f"{path}: refused: it holds Python objects ({', '.join(unsafe[:3])}) besides tensors and plain "
                "values, and loading those could run code. speechser writes and reads weights only; if you "
                "made this file yourself, save a state_dict (tensors) instead; if someone sent it to you, do "
                "not load it with torch.load either")
        with torch.serialization.safe_globals(_ALLOWED_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except (MemoryError, CheckpointError):
        raise
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError, ValueError, ... here
        if "weights only load failed" in str(err).lower():
            raise CheckpointError(f"{path}: refused: it holds Python objects besides tensors and plain values, "
                                  "and loading those could run code (speechser reads weights only)") from None
        size = path.stat().st_size
        what = "an empty file" if size == 0 else f"{size} bytes"
        raise CheckpointError(f"{path}: damaged or not a checkpoint ({what}; {type(err).__name__}: "
                              f"{str(err).strip().splitlines()[0] if str(err).strip() else ''})") from err


def rng_state() -> Dict[str, Any]:
    """Python's, numpy's and torch's random states, as tensors and plain values (so that the checkpoint
    loads with ``weights_only``): numpy's ``(name, keys (624,) uint32, pos, has_gauss, cached)`` keeps its
    keys as an int64 tensor."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: Dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (str(name), torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    keys = keys.numpy() if isinstance(keys, torch.Tensor) else np.asarray(keys)
    np.random.set_state((name, keys.astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_model_state(path: Path | str) -> Dict[str, torch.Tensor]:
    """The model weights of a checkpoint: an epoch/averaged file or a full ``checkpoint.pt``."""
    obj = load_checkpoint(path)
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        return obj["model"]
    return obj


def average_checkpoints(paths: Sequence[Path | str]) -> Dict[str, torch.Tensor]:
    """Element-wise mean of model weights; integer buffers (e.g. BatchNorm's
    ``num_batches_tracked``) are taken from the last checkpoint."""
    if not paths:
        raise ValueError("no checkpoints to average")
    states: List[Dict[str, torch.Tensor]] = [load_model_state(p) for p in paths]
    keys = list(states[0])
    for p, s in zip(paths, states):
        if list(s) != keys:
            raise ValueError(f"{p}: parameters differ from {paths[0]}")
    avg: Dict[str, torch.Tensor] = {}
    for k in keys:
        if states[0][k].is_floating_point():
            avg[k] = sum(s[k].double() for s in states).div(len(states)).to(states[0][k].dtype)  # type: ignore[union-attr]
        else:
            avg[k] = states[-1][k].clone()
    return avg


def load_init_params(model: torch.nn.Module, specs: Sequence[str]) -> None:
    """Initialize parts of ``model`` from other experiments' weights.

    Each spec is ``path[:src_prefix[:dst_prefix]]``: the weights of ``path``
    whose names start with ``src_prefix`` are loaded into the parameters named
    ``dst_prefix + rest`` (``dst_prefix`` defaults to ``src_prefix``; an empty
    ``src_prefix`` takes everything). Every selected weight must exist in the
    model with the same shape, and a spec that selects nothing is an error.
    """
    own = model.state_dict()
    for spec in specs:
        parts = spec.split(":")
        if len(parts) > 3:
            raise ValueError(f"init_param '{spec}': expected path[:src_prefix[:dst_prefix]]")
        path = parts[0]
        src = parts[1] if len(parts) > 1 else ""
        dst = parts[2] if len(parts) > 2 else src
        if not Path(path).is_file():
            raise FileNotFoundError(f"init_param '{spec}': {path}: no such file")
        state = load_model_state(path)
        picked = {dst + k[len(src):]: v for k, v in state.items() if k.startswith(src)}
        if not picked:
            raise ValueError(f"init_param '{spec}': no weight of {path} starts with '{src}'")
        for k, v in picked.items():
            if k not in own:
                raise ValueError(f"init_param '{spec}': the model has no parameter '{k}'")
            if own[k].shape != v.shape:
                raise ValueError(f"init_param '{spec}': '{k}' is {tuple(v.shape)} in {path}, "
                                 f"{tuple(own[k].shape)} in the model")
        model.load_state_dict(picked, strict=False)
        logging.info("init_param: %d tensors from %s (%s -> %s)", len(picked), path, src or "*", dst or "*")
