"""Several processes, one training run: ``torchrun`` + DistributedDataParallel.

``torchrun`` starts one process per GPU (or CPU slot) and sets ``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``; :func:`setup` joins the process group from them
(NCCL on GPUs, Gloo on CPUs). Without those variables everything here is a no-op, so the trainer runs
the same code alone or under ``torchrun``.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def setup(timeout_s: float = 600.0) -> None:
    """Join the process group that ``torchrun`` describes in the environment (once; no-op otherwise)."""
    if is_distributed() or not launched_by_torchrun():
        return
    from datetime import timedelta

    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))


def cleanup() -> None:
    if is_distributed():
        dist.destroy_process_group()


def device() -> torch.device:
    """This process's device: its GPU by ``LOCAL_RANK``, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``DistributedDataParallel(model)`` in a distributed run, the model itself otherwise.

    DDP averages gradients across ranks in ``backward`` and, with ``broadcast_buffers`` (the default),
    copies rank 0's buffers to every rank at each forward: that keeps the discriminators' spectral-norm
    power-iteration vectors identical everywhere.
    """
    if not is_distributed():
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids, broadcast_buffers=True)


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when ``flag`` is True on any rank (one small all-reduce; local otherwise)."""
    if not is_distributed():
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())
