"""Synthetic run directories (config.yaml + metrics.jsonl + eval.json) with hand-picked values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

TOOL_REWARDS = ("toolcall_format", "toolcall_correctness")
SUM_REWARDS = ("summary_quality", "summary_conciseness")


def write_run(root: Path, task: str, algorithm: str, seed: int, *, experiment: str = "embedded_test",
              eval_metrics: dict | None = None, steps: list[dict] | None = None,
              extra_eval: dict | None = None, finished: bool = True) -> Path:
    """A run directory like scripts/train.py + scripts/evaluate.py write it (``finished``: done.json)."""
    run = root / experiment / f"{task}-{algorithm}-s{seed}"
    run.mkdir(parents=True)
    weighting = "saw" if algorithm.endswith("_saw") else "static"
    cfg = {"task": {"name": task}, "algorithm": {"name": algorithm, "weighting": weighting},
           "seed": seed, "experiment_name": experiment}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    if steps is not None:
        (run / "metrics.jsonl").write_text("".join(json.dumps(s) + "\n" for s in steps))
        if finished:
            (run / "done.json").write_text(json.dumps({"steps": len(steps)}))
    if eval_metrics is not None:
        payload = {"task": task, "model": str(run / "policy"), "algorithm": algorithm, "seed": seed,
                   "split": "test", "repeats": 1, "metrics": eval_metrics, "per_category": {}, "n_records": 10,
                   "samples": []}
        payload.update(extra_eval or {})
        (run / "eval.json").write_text(json.dumps(payload))
    return run


def step_rows(rewards: tuple[str, ...], step_times: list[float], adv_times: list[float],
              saw: bool, offset: float = 0.0) -> list[dict]:
    """metrics.jsonl rows: reward means rise with the step; SAW runs log cv and weights."""
    rows = []
    for i, (t, a) in enumerate(zip(step_times, adv_times), start=1):
        row = {"step": i, "time/step": t, "time/advantages": a, "time/rollout": t * 0.5,
               "time/rewards": 0.01, "time/update": t * 0.4, "time/sync": 0.05}
        for j, name in enumerate(rewards):
            row[f"reward/{name}/mean"] = 0.1 * i + j + offset
            row[f"reward/{name}/cv"] = (0.5 / i + j) if saw else None
            row[f"reward/{name}/weight"] = ([0.7, 0.3][j] if i > 1 else 0.5) if saw else 1.0
        rows.append(row)
    return rows


@pytest.fixture
def synthetic_runs(tmp_path) -> Path:
    """Tool calling: base (eval only), grpo x2 seeds, grpo_saw x2 seeds; summarisation: grpo,
    gdpo_saw. Returns the root holding ``embedded_test/<run>``."""
    root = tmp_path / "outputs"
    tool = dict(multi_turn=None, overall=None)
    write_run(root, "toolcall", "base", 0, eval_metrics=dict(non_live=0.10, live=0.20, format_rate=0.0,
                                                              overall_without_multi_turn=0.15, **tool),
              extra_eval={"live_in_training_data": True})
    write_run(root, "toolcall", "grpo", 0, eval_metrics=dict(non_live=0.30, live=0.50, format_rate=0.90,
                                                              overall_without_multi_turn=0.40, **tool),
              steps=step_rows(TOOL_REWARDS, [10.0, 2.0, 4.0], [0.001] * 3, saw=False),
              extra_eval={"live_in_training_data": True})
    write_run(root, "toolcall", "grpo", 1, eval_metrics=dict(non_live=0.40, live=0.60, format_rate=1.0,
                                                              overall_without_multi_turn=0.50, **tool),
              steps=step_rows(TOOL_REWARDS, [100.0, 3.0, 3.0], [0.001] * 3, saw=False, offset=0.2))
    write_run(root, "toolcall", "grpo_saw", 0, eval_metrics=dict(non_live=0.32, live=0.52, format_rate=0.95,
                                                                  overall_without_multi_turn=0.42, **tool),
              steps=step_rows(TOOL_REWARDS, [50.0, 3.0, 3.3], [0.003] * 3, saw=True))
    write_run(root, "toolcall", "grpo_saw", 1, eval_metrics=dict(non_live=0.36, live=0.56, format_rate=0.85,
                                                                  overall_without_multi_turn=0.46, **tool),
              steps=step_rows(TOOL_REWARDS, [1.0, 3.15, 3.15], [0.003] * 3, saw=True, offset=0.1))
    write_run(root, "summarize", "grpo", 0,
              eval_metrics=dict(rouge1=0.40, rouge2=0.20, rougeL=0.30, quality=0.30, conciseness=0.80,
                                total=1.10, mean_words=42.0),
              steps=step_rows(SUM_REWARDS, [5.0, 1.0, 1.0], [0.001] * 3, saw=False))
    write_run(root, "summarize", "gdpo_saw", 0,
              eval_metrics=dict(rouge1=0.42, rouge2=0.22, rougeL=0.32, quality=0.32, conciseness=0.90,
                                total=1.22, mean_words=38.5),
              steps=step_rows(SUM_REWARDS, [5.0, 1.0, 1.0], [0.002] * 3, saw=True))
    return root


@pytest.fixture
def run_writer():
    """``write_run`` for tests that lay out their own run directories."""
    return write_run
