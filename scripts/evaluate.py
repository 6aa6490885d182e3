"""Evaluate a trained run, a checkpoint or the base model; writes eval.json (atomically).

    python scripts/evaluate.py eval.run_dir=outputs/embedded_toolcall/toolcall-gdpo_saw-s0
    python scripts/evaluate.py experiment=embedded_toolcall eval.model=<run_dir>/policy
    python scripts/evaluate.py experiment=embedded_toolcall                 (the base model)
    python scripts/evaluate.py experiment=embedded_toolcall eval.model=<SFT folder> eval.algorithm=sft
    python scripts/evaluate.py experiment=embedded_summarize eval.run_dir=<run> eval.max_records=20
    python scripts/evaluate.py eval.run_dir=<run> eval.repeats=4 eval.temperature=0.7   (k sampled runs)
    python scripts/evaluate.py eval.policy=oracle      (no model: ground truth through the scorer, per category)

Same Hydra config tree as training (conf/), plus the ``eval`` section (conf/eval/default.yaml).
Tool calling is scored on BFCL v4 with bfcl-eval's AST checker (eval/bfcl.py); summarisation
with ROUGE, the task's rewards and, when ``eval.judge.base_url`` is set, an LLM judge
(eval/summarize.py). See eval/harness.py for where eval.json goes and its schema.

Hydra is told not to write anything of its own (no .hydra/ folder, no log file, run dir "."), so
that evaluating a run never touches the run's training files; pass your own ``hydra.*``
overrides to change that.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

log = logging.getLogger("evaluate")

# applied unless the command line sets them: keep Hydra from writing into run directories
_QUIET_HYDRA = {"hydra.run.dir": ".", "hydra.output_subdir": "null", "hydra/job_logging": "stdout",
                "hydra.sweep.dir": ".", "hydra.sweep.subdir": "."}


def _with_quiet_hydra(argv: list[str]) -> list[str]:
    given = {a.split("=", 1)[0].lstrip("+~") for a in argv[1:] if "=" in a}
    return argv + [f"{k}={v}" for k, v in _QUIET_HYDRA.items() if k not in given]


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", force=True)
    from eval.harness import run_evaluation

    payload, path = run_evaluation(cfg)
    if payload["task"] == "toolcall":
        from eval.harness import format_category_table

        print(format_category_table(payload), flush=True)
    metrics = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in payload["metrics"].items()}
    log.info("%s / %s: %s", payload["task"], payload["algorithm"], json.dumps(metrics))
    log.info("wrote %s", path)
    from eval.dashboard import log_eval_to_wandb

    wandb_id = log_eval_to_wandb(path.parent, payload["metrics"],
                                 {"per_category": payload["per_category"]} if payload.get("per_category") else None)
    if wandb_id:
        log.info("eval/* logged to W&B run %s (offline unless logger.mode=online)", wandb_id)


if __name__ == "__main__":
    sys.argv = _with_quiet_hydra(sys.argv)
    main()
