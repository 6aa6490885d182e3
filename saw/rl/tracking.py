"""Weights & Biases mirror of the metrics (offline by default, ``logger=none`` to switch off).

One W&B run per training run: its id is stored in ``<run_dir>/wandb_run_id`` the first time the
run logs and reused on every later launch (``trainer.resume=auto``) and by the evaluation
(``eval.dashboard.log_eval_to_wandb`` reads the same file and the run's ``config.yaml``), so a
resumed run continues the same W&B run on one step axis. Offline, every launch writes its own
folder ``<run_dir>/wandb/offline-run-<time>-<id>``; ``wandb sync <run_dir>/wandb/offline-run-*``
uploads them as one run, in order of start time.

Step axes (``define_metric``): the training metrics (``reward/*``, ``adv/*``, ``response/*``,
``actor/*``, ``perf/*``, ``time/*``, ``val/*``, ``dist/*``) are plotted against ``step`` (the
trainer's step, also W&B's ``_step``); evaluation results ``eval/*`` against ``eval/step`` (the
training step of the evaluated policy).
"""

from __future__ import annotations

import logging
import os
import secrets
import string
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from saw.core.io import atomic_write_text

log = logging.getLogger(__name__)

RUN_ID_FILE = "wandb_run_id"
STEP_METRIC = "step"
EVAL_STEP_METRIC = "eval/step"
# metric families logged by the trainer every step (val/* every trainer.val_every steps)
TRAIN_PREFIXES = ("reward", "adv", "response", "actor", "perf", "time", "val", "dist")


def read_run_id(run_dir: str | os.PathLike) -> str | None:
    """The W&B run id stored in ``run_dir`` (None when the run never logged to W&B)."""
    path = Path(run_dir) / RUN_ID_FILE
    if not path.is_file():
        return None
    value = path.read_text(encoding="utf-8").strip()
    return value or None


def ensure_run_id(run_dir: str | os.PathLike, configured: str | None = None) -> str:
    """The run's W&B id: ``configured`` (``logger.run_id``) if set, else the stored one, else a new
    one; stored in ``<run_dir>/wandb_run_id`` (atomically) so that every launch reuses it."""
    stored = read_run_id(run_dir)
    if configured:
        run_id = str(configured)
        if stored and stored != run_id:
            log.warning("logger.run_id=%s replaces the stored W&B run id %s of %s", run_id, stored, run_dir)
    elif stored:
        run_id = stored
    else:  # W&B's own format: 8 characters of [a-z0-9]
        run_id = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
    if run_id != stored:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        atomic_write_text(Path(run_dir) / RUN_ID_FILE, run_id + "\n")
    return run_id


def define_step_axes(run: Any) -> None:
    """Tie the training families to ``step`` and ``eval/*`` to ``eval/step`` (see module docstring)."""
    run.define_metric(STEP_METRIC)
    for prefix in TRAIN_PREFIXES:
        run.define_metric(f"{prefix}/*", step_metric=STEP_METRIC)
    run.define_metric(EVAL_STEP_METRIC)
    run.define_metric("eval/*", step_metric=EVAL_STEP_METRIC)


class Tracker:
    """Thin wrapper: ``log(metrics, step)``, ``log_samples(rows, step)``, ``finish()``.

    backend "wandb": mode offline (default), online or disabled; runs are grouped by experiment
    (or sweep) and tagged with algorithm, seed and task; the run id lives in
    ``<run_dir>/wandb_run_id`` (one W&B run per training run, resumed on relaunch).
    backend "none": every call is a no-op.
    """

    def __init__(self, cfg: Any, *, run_dir: str, run_name: str, config: dict, rank: int = 0):
        self.enabled = rank == 0 and cfg is not None and cfg.get("backend", "none") == "wandb"
        self.run = None
        self.run_id: str | None = None
        if not self.enabled:
            return
        try:
            import wandb  # optional: only when W&B logging is on
        except ImportError:  # pragma: no cover
            log.warning("wandb is not installed; metrics go to metrics.jsonl only")
            self.enabled = False
            return
        mode = os.environ.get("WANDB_MODE") or cfg.get("mode", "offline")
        self._wandb = wandb
        self.run_id = ensure_run_id(run_dir, cfg.get("run_id"))
        self.run = wandb.init(
            project=cfg.get("project", "saw"), entity=cfg.get("entity"), group=cfg.get("group"),
            name=run_name, tags=list(cfg.get("tags") or []), config=config, dir=run_dir, mode=mode,
            job_type="train", resume="allow", id=self.run_id, reinit="finish_previous",
        )
        define_step_axes(self.run)
        log.info("W&B run %s (id %s, %s mode) in %s", run_name, self.run_id, mode, run_dir)

    def log(self, metrics: dict[str, Any], step: int) -> None:
        if self.run is not None:
            row = {k: v for k, v in metrics.items() if v is not None}
            row[STEP_METRIC] = step
            self.run.log(row, step=step)

    def log_samples(self, columns: Sequence[str], rows: Sequence[Sequence[Any]], step: int) -> None:
        if self.run is not None:
            self.run.log({"samples": self._wandb.Table(columns=list(columns), data=[list(r) for r in rows])},
                         step=step)

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None
