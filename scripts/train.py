"""Train a policy with multi-reward RL (GRPO / GDPO hosts, static or SAW weighting).

    python scripts/train.py experiment=embedded_toolcall algorithm=gdpo_saw seed=1
    python scripts/train.py -m experiment=embedded_summarize algorithm=grpo,grpo_saw seed=0,1
    deepspeed --num_gpus 8 scripts/train.py experiment=paper_toolcall_qwen2.5-1.5b   (GPUs)

Each run directory (``${output_root}/${experiment_name}/${run_name}``) holds the resolved
config.yaml, metrics.jsonl, checkpoints/, policy/ (the final HF model) and done.json. A run whose
done.json exists is skipped; an interrupted run resumes from its latest checkpoint.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig  # noqa: E402


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    # Hydra's job logging already writes INFO to the console and to <run dir>/train.log
    from saw.rl.job import run_training

    try:
        summary = run_training(cfg, Path(HydraConfig.get().runtime.output_dir))
    except Exception:
        logging.getLogger("train").exception("training failed")  # the traceback also lands in train.log
        raise
    if summary.get("stopped_by_signal"):  # checkpoint written; relaunching resumes from it
        sys.exit(128 + int(summary["stopped_by_signal"]))


if __name__ == "__main__":
    main()
