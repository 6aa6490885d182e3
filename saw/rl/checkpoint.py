"""Atomic, resumable checkpoints.

A checkpoint of step s lives in ``<run>/checkpoints/step_<s>/``: the DeepSpeed engine state
(policy, optimizer, scheduler; sharded under ZeRO) plus ``trainer_state.json`` (step, data
position, weighting state) and ``rng_rank<r>.pt``. It is written into ``step_<s>.tmp`` and renamed
only when complete, so a crash mid-write never leaves a checkpoint that looks finished;
``latest`` is then replaced atomically. Old checkpoints beyond ``keep`` are removed.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from saw.core.io import atomic_write_text, explain_write_error

_STEP_DIR = re.compile(r"^step_(\d+)$")


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def list_checkpoints(ckpt_root: str | os.PathLike) -> list[tuple[int, Path]]:
    root = Path(ckpt_root)
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = _STEP_DIR.match(p.name)
        if m and p.is_dir() and (p / "trainer_state.json").exists():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(ckpt_root: str | os.PathLike) -> Path | None:
    ckpts = list_checkpoints(ckpt_root)
    return ckpts[-1][1] if ckpts else None


def save_checkpoint(engine, ckpt_root: str | os.PathLike, step: int, state: dict[str, Any], *,
                    rank: int = 0, barrier=lambda: None, keep: int = 2) -> Path:
    """Write the checkpoint of ``step`` atomically; every rank must call it."""
    root = Path(ckpt_root)
    final = root / f"step_{step:06d}"
    tmp = root / f"step_{step:06d}.tmp"
    if rank == 0:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    barrier()
    try:
        engine.save_checkpoint(str(tmp), tag="engine")
        torch.save(rng_state(), tmp / f"rng_rank{rank}.pt")
    except (OSError, RuntimeError) as exc:  # a full disk surfaces as 'unexpected pos' or ENOSPC
        raise explain_write_error(exc, tmp) from exc
    barrier()
    if rank == 0:
        atomic_write_text(tmp / "trainer_state.json", json.dumps(state, indent=1, sort_keys=True))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        atomic_write_text(root / "latest", final.name + "\n")
        for _, old in list_checkpoints(root)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    barrier()
    return final


def load_checkpoint(engine, ckpt_dir: str | os.PathLike, *, rank: int = 0) -> dict[str, Any]:
    """Restore engine (model, optimizer, scheduler) and RNG; returns the trainer state dict."""
    ckpt = Path(ckpt_dir)
    engine.load_checkpoint(str(ckpt), tag="engine", load_optimizer_states=True, load_lr_scheduler_states=True)
    rng_file = ckpt / f"rng_rank{rank}.pt"
    if rng_file.exists():
        set_rng_state(torch.load(rng_file, weights_only=False))
    return json.loads((ckpt / "trainer_state.json").read_text())
