"""Weights & Biases mirror of the metrics (offline by default, ``logger=none`` to switch off)."""

from __future__ import annotations

import logging
import os
from typing import Any, Sequence

log = logging.getLogger(__name__)


class Tracker:
    """Thin wrapper: ``log(metrics, step)``, ``log_samples(rows, step)``, ``finish()``.

    backend "wandb": mode offline (default), online or disabled; runs are grouped by experiment
    (or sweep) and tagged with algorithm and seed. backend "none": every call is a no-op.
    """

    def __init__(self, cfg: Any, *, run_dir: str, run_name: str, config: dict, rank: int = 0):
        self.enabled = rank == 0 and cfg is not None and cfg.get("backend", "none") == "wandb"
        self.run = None
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
        self.run = wandb.init(
            project=cfg.get("project", "saw"), entity=cfg.get("entity"), group=cfg.get("group"),
            name=run_name, tags=list(cfg.get("tags") or []), config=config, dir=run_dir, mode=mode,
            resume="allow", id=cfg.get("run_id"), reinit="finish_previous",
        )
        log.info("W&B run %s (%s mode) in %s", run_name, mode, run_dir)

    def log(self, metrics: dict[str, Any], step: int) -> None:
        if self.run is not None:
            self.run.log({k: v for k, v in metrics.items() if v is not None}, step=step)

    def log_samples(self, columns: Sequence[str], rows: Sequence[Sequence[Any]], step: int) -> None:
        if self.run is not None:
            self.run.log({"samples": self._wandb.Table(columns=list(columns), data=[list(r) for r in rows])},
                         step=step)

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None
