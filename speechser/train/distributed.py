"""Distributed set-up from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK)."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from speechser.data.sampler import DistInfo

__all__ = ["DistInfo", "init_distributed"]


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
