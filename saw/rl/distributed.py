"""Process-group setup for DeepSpeed on CPU (gloo) or GPU (nccl), launched or not.

Launched by the DeepSpeed launcher or torchrun, the rank variables are already set. Run as a
plain ``python`` process, we set a single-process world so DeepSpeed still initialises.
"""

from __future__ import annotations

import os
import socket
from typing import Any

import torch
import torch.distributed as dist


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_distributed(backend: str | None = None) -> tuple[int, int]:
    """Initialise torch.distributed through DeepSpeed; returns (rank, world_size)."""
    if "RANK" not in os.environ:
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(_free_port()))
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    import deepspeed  # heavy optional: the training stack

    if not dist.is_initialized():
        _forget_deepspeed_groups()
        deepspeed.init_distributed(dist_backend=backend)
    return dist.get_rank(), dist.get_world_size()


def _forget_deepspeed_groups() -> None:
    """Drop the process groups DeepSpeed cached from an earlier, since destroyed, world.

    Several runs in one process (a Hydra multirun with the basic launcher) each create a world;
    vLLM's shutdown destroys it between runs. DeepSpeed keeps a clone of the old world group in
    module globals and would hand it to the next engine ("Group ... is not registered").
    """
    from deepspeed.utils import groups  # heavy optional: the training stack

    for name in ("_WORLD_GROUP", "_ZERO_PARAM_INTRA_PARALLEL_GROUP", "_DATA_PARALLEL_GROUP",
                 "_MODEL_PARALLEL_GROUP", "_TENSOR_MODEL_PARALLEL_GROUP"):
        if hasattr(groups, name):
            setattr(groups, name, None)
    for name in ("_EXPERT_PARALLEL_GROUP", "_EXPERT_PARALLEL_GROUP_RANKS", "_EXPERT_DATA_PARALLEL_GROUP",
                 "_EXPERT_DATA_PARALLEL_GROUP_RANKS", "_ALL_TO_ALL_GROUP"):
        if isinstance(getattr(groups, name, None), dict):
            getattr(groups, name).clear()


def barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Send a picklable object from ``src`` to every rank; returns it on all ranks."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return obj
    box = [obj if dist.get_rank() == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_reduce_mean(value: float) -> float:
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item()) / dist.get_world_size()
