"""Distributed set-up from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK), the global batch
kept across process counts, and the reductions validation needs.

The recipes start training through ``speechser-launch`` (:mod:`speechser.bin.launch`): one process, or
``torchrun`` with ``--ngpu`` processes per node on ``--num_nodes`` nodes (through Slurm's ``srun``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, List, Sequence

import torch
import torch.distributed as dist

from speechser.data.sampler import DistInfo

__all__ = ["BatchPlan", "DistInfo", "all_gather_objects", "broadcast_buffers", "init_distributed", "plan_global_batch", "sum_over_ranks"]


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the default process group when launched by torchrun (RANK, WORLD_SIZE, LOCAL_RANK).

    The backend follows the device the trainer will use (``device``: ``auto``,
    ``cpu``, ``cuda``...): NCCL with one GPU per process (``cuda:LOCAL_RANK``),
    gloo on CPUs. So ``--trainer.device cpu`` runs gloo even where a GPU is
    visible, and more processes on a node than it has visible GPUs is an
    error that says so, not a crash inside CUDA.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else torch.device(device).type == "cuda"
    if use_cuda:
        n_gpus = torch.cuda.device_count()
        if local >= n_gpus:
            raise RuntimeError(f"process LOCAL_RANK={local} has no GPU of its own: {n_gpus} visible on this node "
                               f"(launch at most {n_gpus} process(es) per node with torchrun --nproc_per_node, or "
                               "train on CPUs with --trainer.device cpu, which uses gloo)")
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(local)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistInfo(rank, world, local)


@dataclass(frozen=True)
class BatchPlan:
    """What each of ``world_size`` processes uses so that one update sees the config's global batch.

    The config's ``trainer.accum_grad`` and ``data.max_frames`` (and ``max_batch_size``) are meant for
    ``trainer.batch_world_size`` processes: one update then sums ``G = accum_grad · batch_world_size``
    batches of at most ``max_frames`` padded frames. Under ``N`` processes each accumulates ``G / N``
    batches when ``N`` divides ``G``; otherwise ``a = ⌈G / N⌉`` batches of ``⌊max_frames · G / (N·a)⌋``
    frames (and as many fewer utterances), so the frames per update stay within rounding.
    ``batch_world_size 0`` keeps each process's batch as configured (the global batch grows with N,
    as in ESPnet).
    """

    accum_grad: int
    max_frames: int
    max_batch_size: int
    message: str

def plan_global_batch(accum_grad: int, max_frames: int, max_batch_size: int, world_size: int,
                      batch_world_size: int = 1) -> BatchPlan:
    """See :class:`BatchPlan`. ``world_size``: the processes of this run; returns what each uses."""
    if world_size < 1 or accum_grad < 1 or batch_world_size < 0:
        raise ValueError(f"world_size {world_size}, accum_grad {accum_grad}, batch_world_size {batch_world_size}")
    per_update = f"{accum_grad} x {max_frames} frames"
    if batch_world_size == 0 or batch_world_size == world_size:
        scope = "each process's batch as configured (trainer.batch_world_size 0)" if batch_world_size == 0 else \
            f"the config's batch for {world_size} process(es)"
        return BatchPlan(accum_grad, max_frames, max_batch_size,
                         f"{world_size} process(es), {scope}: accum_grad {per_update} each, a global batch of "
                         f"{world_size * accum_grad} x {max_frames} frames per update")
    target = accum_grad * batch_world_size
    accum = math.ceil(target / world_size)
    ratio = target / (world_size * accum)
    frames = max(1, int(max_frames * ratio))
    batch = max(1, int(max_batch_size * ratio))
    how = f"accum_grad {accum_grad} -> {accum}" + ("" if ratio == 1 else
                                                    f", max_frames {max_frames} -> {frames}, "
                                                    f"max_batch_size {max_batch_size} -> {batch}")
    return BatchPlan(accum, frames, batch,
                     f"{world_size} process(es) keep the global batch the config sets for {batch_world_size} "
                     f"(trainer.batch_world_size): {how}; {world_size} x {accum} x {frames} frames per update "
                     f"(configured {target} x {max_frames})")


def sum_over_ranks(values: Sequence[float], info: DistInfo) -> List[float]:
    """The element-wise sum of ``values`` over the ranks (the values themselves when not distributed);
    a collective: every rank must call it."""
    if not info.enabled:
        return list(values)
    t = torch.tensor(list(values), dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.to(torch.device("cuda", info.local_rank))
    dist.all_reduce(t)
    return t.cpu().tolist()


def broadcast_buffers(model: torch.nn.Module, info: DistInfo) -> None:
    """Give every rank rank 0's buffers of ``model`` (a collective)."""
    if not info.enabled:
        return
    for buf in model.buffers():
        dist.broadcast(buf.data, src=0)


def all_gather_objects(obj: Any, info: DistInfo) -> List[Any]:
    """Every rank's ``obj`` in rank order (``[obj]`` when not distributed); a collective."""
    if not info.enabled:
        return [obj]
    out: List[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out
