"""One training job from a composed config: prepare the model, optional SFT warm start, RL, final policy.

Used by ``scripts/train.py`` (Hydra) and by the tests (Hydra's compose API).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from saw.core.io import atomic_write_text
from saw.models.prepare import prepare_model
from saw.rl import distributed as dist_utils
from saw.rl.sft import run_sft, save_hf_model
from saw.rl.trainer import RLTrainer
from saw.rl.validation import validate_config

log = logging.getLogger(__name__)


def run_training(cfg: DictConfig, run_dir: Path) -> dict:
    """The whole job for one config: prepare model, optional SFT, RL, final policy."""

    world = int(os.environ.get("WORLD_SIZE", "1"))
    validate_config(cfg, world_size=world)
    run_dir.mkdir(parents=True, exist_ok=True)
    done = run_dir / "done.json"
    if done.exists() and str(cfg.trainer.resume) == "auto":
        log.info("run %s already finished (%s); skipping", run_dir, done)
        return json.loads(done.read_text())
    rank = int(os.environ.get("RANK", "0"))
    if rank == 0:
        atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    t0 = time.time()
    model_path = str(prepare_model(cfg.model))
    base_model = model_path
    if cfg.sft.get("enabled", False):
        model_path = str(run_sft(cfg, model_path))
    trainer = RLTrainer(cfg, run_dir, model_path)
    try:
        history = trainer.fit()
        finished = trainer.step >= int(cfg.trainer.total_steps)
        if finished:
            save_hf_model(trainer.engine, trainer.tokenizer, run_dir / "policy", rank=trainer.rank)
    finally:
        trainer.close()
    summary = {"steps": trainer.step, "start_model": model_path, "base_model": base_model,
               "seconds": time.time() - t0, "algorithm": str(cfg.algorithm.name), "task": str(cfg.task.name),
               "seed": int(cfg.seed)}
    if finished and rank == 0:
        if not cfg.trainer.get("keep_final_checkpoint", False):
            shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
        atomic_write_text(done, json.dumps(summary, indent=1))
    dist_utils.barrier()
    if history and rank == 0:
        last = history[-1]
        log.info("finished %d steps in %.0f s; last step: %s", trainer.step, summary["seconds"],
                 ", ".join(f"{k}={last[k]:.3f}" for k in sorted(last) if k.startswith("reward/") and k.endswith("/mean")))
    return summary


