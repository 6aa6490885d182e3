"""Train a policy with multi-reward RL (GRPO / GDPO hosts, static or SAW weighting).

    python scripts/train.py experiment=embedded_toolcall algorithm=gdpo_saw seed=1
    python scripts/train.py -m experiment=embedded_summarize algorithm=grpo,grpo_saw seed=0,1
    deepspeed --num_gpus 8 scripts/train.py experiment=paper_toolcall_qwen2.5-1.5b   (GPUs)

Each run directory (``${output_root}/${experiment_name}/${run_name}``) holds the resolved
config.yaml, metrics.jsonl, checkpoints/, policy/ (the final HF model) and done.json. A run whose
done.json exists is skipped; an interrupted run resumes from its latest checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

log = logging.getLogger("train")


def run(cfg: DictConfig, run_dir: Path) -> dict:
    """The whole job for one config: prepare model, optional SFT, RL, final policy."""
    from saw import distributed as dist_utils
    from saw.checkpoint import atomic_write_text
    from saw.config import validate_config
    from saw.models import prepare_model

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
        from saw.sft import run_sft

        model_path = str(run_sft(cfg, model_path))
    from saw.sft import save_hf_model
    from saw.trainer import RLTrainer

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


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", force=True)
    run(cfg, Path(HydraConfig.get().runtime.output_dir))


if __name__ == "__main__":
    main()
