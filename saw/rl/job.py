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
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rewards import build_rewards
from saw.core.config import to_plain_value
from saw.core.io import RunLock, atomic_write_text
from saw.models.prepare import prepare_model
from saw.rl import distributed as dist_utils
from saw.rl.sft import run_sft, save_hf_model
from saw.rl.trainer import RLTrainer
from saw.rl.validation import ConfigError, validate_config
from saw.tasks import build_task

log = logging.getLogger(__name__)


# Keys that may change between launches of one run: bookkeeping, logging, evaluation, paths, and
# total_steps (a finished run can be extended). Everything else must match the stored config.
RESUME_FREE_KEYS = (
    "trainer.resume", "trainer.stop_after_steps", "trainer.save_every", "trainer.keep_checkpoints",
    "trainer.keep_final_checkpoint", "trainer.val_every", "trainer.val_records", "trainer.torch_threads",
    "trainer.check_sync", "trainer.total_steps", "logger", "eval", "output_root", "cache_dir", "hydra",
)


# ... and these leaves anywhere (e.g. task.rewards.0.base_url): where a judge runs, not what it grades
RESUME_FREE_LEAVES = ("base_url", "cache_path")


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    if isinstance(node, list) and any(isinstance(v, dict) for v in node):
        out = {}
        for i, value in enumerate(node):
            out.update(_flatten(value, f"{prefix}{i}."))
        return out
    return {prefix[:-1]: node}


def config_differences(stored: dict, current: dict) -> list[str]:
    """Training-relevant keys whose value differs between two resolved configs, as 'key: old -> new'."""
    a, b = _flatten(stored), _flatten(current)
    free = tuple(RESUME_FREE_KEYS)
    diffs = []
    for key in sorted(set(a) | set(b)):
        if any(key == f or key.startswith(f + ".") for f in free) or key.rsplit(".", 1)[-1] in RESUME_FREE_LEAVES:
            continue
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            diffs.append(f"{key}: {a.get(key, '<absent>')!r} -> {b.get(key, '<absent>')!r}")
    return diffs


def check_resume_config(cfg: DictConfig, run_dir: Path) -> None:
    """Refuse to resume (or skip as finished) a run whose stored config differs in a
    training-relevant key, unless ``trainer.resume=force``, which records what was accepted."""
    stored_path = run_dir / "config.yaml"
    started = (run_dir / "done.json").exists() or (run_dir / "checkpoints").is_dir()
    if not started or not stored_path.is_file():
        return
    stored = OmegaConf.to_container(OmegaConf.load(stored_path), resolve=False)
    current = OmegaConf.to_container(cfg, resolve=True)
    diffs = config_differences(stored, current)
    if not diffs:
        return
    if str(cfg.trainer.resume) != "force":
        raise ConfigError(f"run {run_dir} was started with another config; differing keys:\n  " + "\n  ".join(diffs)
                          + "\nuse another run directory (e.g. seed= or experiment_name=), delete this one, or accept "
                          "the change with trainer.resume=force (recorded in resume_overrides.jsonl)")
    record = {"time": time.strftime("%Y-%m-%d %H:%M:%S"), "accepted": diffs}
    with open(run_dir / "resume_overrides.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
    log.warning("trainer.resume=force: resuming %s with %d changed keys: %s", run_dir, len(diffs), "; ".join(diffs))


def run_training(cfg: DictConfig, run_dir: Path) -> dict:
    """The whole job for one config: prepare model, optional SFT, RL, final policy.

    Rank 0 holds an exclusive lock on ``run_dir`` for the whole job: a second launch of the same
    run fails at once, naming the holder.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    validate_config(cfg, world_size=world)
    rank = int(os.environ.get("RANK", "0"))
    lock = RunLock(run_dir).acquire() if rank == 0 else None
    try:
        return _run_locked(cfg, run_dir, rank)
    finally:
        if lock is not None:
            lock.release()


def _run_locked(cfg: DictConfig, run_dir: Path, rank: int) -> dict:
    run_dir.mkdir(parents=True, exist_ok=True)
    check_resume_config(cfg, run_dir)
    done = run_dir / "done.json"
    resume = str(cfg.trainer.resume)
    if done.exists() and resume in ("auto", "force"):
        summary = json.loads(done.read_text())
        if int(summary.get("steps", 0)) >= int(cfg.trainer.total_steps):
            log.info("run %s already finished (%s); skipping", run_dir, done)
            return summary
        if not (run_dir / "checkpoints").is_dir():
            raise ConfigError(f"run {run_dir} finished {summary.get('steps')} steps and kept no checkpoint to extend to "
                              f"trainer.total_steps={cfg.trainer.total_steps}; use a new run directory (finished "
                              "runs keep their checkpoint with trainer.keep_final_checkpoint=true)")
    if rank == 0:
        atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    t0 = time.time()
    if rank == 0:  # before the model is prepared or SFT runs: the data and the rewards can work
        task = build_task(cfg.task)
        rewards = build_rewards(to_plain_value(task.reward_specs))
        task.check_records(rewards)  # every training record's ground truth parses (or skip_bad_records)
        for reward in rewards:
            reward.preflight()  # e.g. the LLM judge answers
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
               "seed": int(cfg.seed), "stopped_by_signal": trainer.stop_signal}
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


