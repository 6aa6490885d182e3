"""Reading finished run directories: config.yaml, metrics.jsonl and eval.json.

A run directory (scripts/train.py) holds ``config.yaml`` (the resolved Hydra config: task.name,
algorithm.name, seed, experiment_name, ...), ``metrics.jsonl`` (one JSON object per step, see
saw/rl/metrics.py) and, once evaluated (scripts/evaluate.py), ``eval.json``. A base-model evaluation
is a run directory whose algorithm is ``base`` (config.yaml and eval.json, no metrics).
"""

from __future__ import annotations

import glob
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from omegaconf import OmegaConf

from saw.core.io import read_metrics
from saw.tasks import TASKS

log = logging.getLogger(__name__)

# display order and labels of the methods in tables and figures
METHOD_ORDER = ("base", "sft", "grpo", "grpo_saw", "gdpo", "gdpo_saw", "grpo_gradient", "gdpo_gradient",
                "grpo_sa_mrpo", "gdpo_sa_mrpo", "grpo_mo", "gdpo_dvao", "grpo_nostd", "drgrpo")
METHOD_LABELS = {
    "base": "Base model",
    "sft": "SFT warm start",
    "grpo": "GRPO",
    "grpo_saw": "GRPO+SAW",
    "gdpo": "GDPO",
    "gdpo_saw": "GDPO+SAW",
    "grpo_gradient": "GRPO+Gradient",
    "gdpo_gradient": "GDPO+Gradient",
    "grpo_nostd": "GRPO (no std)",
    "drgrpo": "Dr.GRPO",
    "grpo_sa_mrpo": "GRPO+SA-MRPO",
    "gdpo_sa_mrpo": "GDPO+SA-MRPO",
    "grpo_mo": "MO-GRPO",
    "gdpo_dvao": "DVAO",
}
# method -> the host it is compared with in the overhead table
HOST_OF = {"grpo_saw": "grpo", "gdpo_saw": "gdpo", "grpo_gradient": "grpo", "gdpo_gradient": "gdpo",
           "grpo_sa_mrpo": "grpo", "gdpo_sa_mrpo": "gdpo", "grpo_mo": "grpo", "gdpo_dvao": "gdpo"}


def method_label(algorithm: str) -> str:
    """Display name of an algorithm (unknown names are shown as they are)."""
    return METHOD_LABELS.get(algorithm, algorithm)


def method_sort_key(algorithm: str) -> tuple[int, str]:
    """Sort key: the paper's row order first, other methods after, alphabetically."""
    return (METHOD_ORDER.index(algorithm) if algorithm in METHOD_ORDER else len(METHOD_ORDER), algorithm)


def is_saw(algorithm: str, config: dict | None = None) -> bool:
    """Whether a run used SAW weighting (its config says ``weighting: saw``, or its name ends in _saw)."""
    weighting = ((config or {}).get("algorithm") or {}).get("weighting")
    return weighting == "saw" if weighting is not None else algorithm.endswith("_saw")


@dataclass
class Run:
    """One run directory's contents."""

    path: Path
    config: dict[str, Any]
    task: str
    algorithm: str
    seed: int
    experiment: str
    metrics: list[dict[str, Any]] = field(default_factory=list)
    eval: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        return method_label(self.algorithm)

    @property
    def finished(self) -> bool:
        """A training run counts once it wrote done.json; evaluation-only folders (base model, SFT
        warm start: no metrics.jsonl) are always complete."""
        return (self.path / "done.json").is_file() or not (self.path / "metrics.jsonl").is_file()

    @property
    def is_embedded(self) -> bool:
        """Smoke-scale run on the embedded data/model (experiment name starts with 'embedded')."""
        return self.experiment.startswith("embedded")

    @property
    def uses_saw(self) -> bool:
        return is_saw(self.algorithm, self.config)

    def series(self, key: str) -> tuple[list[int], list[float]]:
        """(steps, values) of one metric over training; steps without a finite value are skipped."""
        steps, values = [], []
        for row in self.metrics:
            v = row.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and "step" in row:
                steps.append(int(row["step"]))
                values.append(float(v))
        return steps, values

    def reward_names(self) -> list[str]:
        """Reward names logged in metrics.jsonl (``reward/<name>/mean``, without ``total``)."""
        names: list[str] = []
        for row in self.metrics:
            for key in row:
                parts = key.split("/")
                if len(parts) == 3 and parts[0] == "reward" and parts[2] == "mean" and parts[1] != "total" \
                        and parts[1] not in names:
                    names.append(parts[1])
        return names


def canonical_task(name: str) -> str:
    """The registered task name for ``name`` (aliases such as "summarization" resolved);
    unknown names are returned as they are."""
    try:
        return TASKS.canonical(name)
    except (ValueError, TypeError):
        return name


def _read_config(path: Path) -> dict[str, Any]:
    cfg = OmegaConf.load(path)
    return OmegaConf.to_container(cfg, resolve=False)  # type: ignore[return-value]


def _read_metrics(path: Path) -> list[dict[str, Any]]:
    return read_metrics(path)


def load_run(path: str | os.PathLike) -> Run:
    """Read one run directory. Raises FileNotFoundError / ValueError naming what is missing."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"run directory {str(root)!r} does not exist")
    cfg_path = root / "config.yaml"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{root} has no config.yaml: not a run directory of scripts/train.py or "
                                "scripts/evaluate.py")
    cfg = _read_config(cfg_path)
    evaluation = None
    if (root / "eval.json").is_file():
        evaluation = json.loads((root / "eval.json").read_text(encoding="utf-8"))
    task = ((cfg.get("task") or {}).get("name")) or (evaluation or {}).get("task")
    algorithm = (evaluation or {}).get("algorithm") or ((cfg.get("algorithm") or {}).get("name"))
    if not task or not algorithm:
        raise ValueError(f"{cfg_path}: needs task.name and algorithm.name (got task={task!r}, "
                         f"algorithm={algorithm!r})")
    metrics = _read_metrics(root / "metrics.jsonl") if (root / "metrics.jsonl").is_file() else []
    seed = cfg.get("seed", (evaluation or {}).get("seed", 0))
    return Run(path=root, config=cfg, task=canonical_task(str(task)), algorithm=str(algorithm), seed=int(seed),
               experiment=str(cfg.get("experiment_name", "")), metrics=metrics, eval=evaluation)


def expand_run_paths(patterns: Iterable[str | os.PathLike]) -> list[Path]:
    """Run directories named by paths or glob patterns; a directory without config.yaml is
    searched one and two levels down (``outputs/<experiment>`` or ``outputs``)."""
    found: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(str(pattern))) or [str(pattern)]
        for m in matches:
            p = Path(m)
            if (p / "config.yaml").is_file():
                candidates = [p]
            elif p.is_dir():
                candidates = sorted(q.parent for q in p.glob("*/config.yaml")) or \
                    sorted(q.parent for q in p.glob("*/*/config.yaml"))
            else:
                candidates = []
            for c in candidates:
                if c not in found:
                    found.append(c)
    return found


def load_runs(patterns: Sequence[str | os.PathLike] | str | os.PathLike, strict: bool = False) -> list[Run]:
    """All runs found under ``patterns`` (see :func:`expand_run_paths`), sorted by task, method
    order and seed. Unreadable directories are skipped with a warning (``strict``: raised)."""
    if isinstance(patterns, (str, os.PathLike)):
        patterns = [patterns]
    runs = []
    for path in expand_run_paths(patterns):
        try:
            runs.append(load_run(path))
        except (OSError, ValueError) as exc:
            if strict:
                raise
            log.warning("skipping %s: %s", path, exc)
    runs.sort(key=lambda r: (r.task, method_sort_key(r.algorithm), r.seed, str(r.path)))
    return runs


GroupKey = tuple[str, str]  # (experiment name, algorithm)


def group_by_method(runs: Iterable[Run], task: str | None = None) -> dict[GroupKey, list[Run]]:
    """(experiment, algorithm) -> runs (of ``task`` when given), ordered by experiment then the
    paper's method order. Runs of different experiments (another model or scale) are never pooled."""
    groups: dict[GroupKey, list[Run]] = {}
    for run in runs:
        if task is None or run.task == task:
            groups.setdefault((run.experiment, run.algorithm), []).append(run)
    return {k: groups[k] for k in sorted(groups, key=lambda k: (k[0], method_sort_key(k[1])))}


def group_label(key: GroupKey, groups: Iterable[GroupKey]) -> str:
    """Method name, with the experiment in brackets when ``groups`` span several experiments."""
    several = len({k[0] for k in groups}) > 1
    return method_label(key[1]) + (f" [{key[0]}]" if several else "")
