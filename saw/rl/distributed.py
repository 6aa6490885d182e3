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
    slurm_world_from_env()
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


def slurm_world_from_env(environ: dict | None = None) -> bool:
    """Under ``srun`` (one task per GPU, e.g. Hydra's submitit launcher with ``tasks_per_node`` > 1)
    and no launcher variables: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT from
    SLURM's. MASTER_ADDR is the first host of the job (``SLURM_LAUNCH_NODE_IPADDR`` when SLURM
    gives no host list in the environment); MASTER_PORT is derived from the job id unless set.
    Returns whether it set them."""
    env = os.environ if environ is None else environ
    if "RANK" in env or int(env.get("SLURM_NTASKS", "1")) <= 1 or "SLURM_PROCID" not in env:
        return False
    hosts = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST") or ""
    first = hosts.split(",")[0]
    if "[" in first:  # node[01-04,07] -> node01
        prefix, rest = first.split("[", 1)
        first = prefix + rest.split("-")[0].split(",")[0].rstrip("]")
    env.update(RANK=env["SLURM_PROCID"], WORLD_SIZE=env["SLURM_NTASKS"],
               LOCAL_RANK=env.get("SLURM_LOCALID", "0"))
    env.setdefault("MASTER_ADDR", first or env.get("SLURM_LAUNCH_NODE_IPADDR", "127.0.0.1"))
    env.setdefault("MASTER_PORT", str(20000 + int(env.get("SLURM_JOB_ID", "0")) % 20000))
    return True


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


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's picklable ``obj``, in rank order, on every rank (``[obj]`` on one rank)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


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
