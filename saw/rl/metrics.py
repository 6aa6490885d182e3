"""Per-step training metrics: per-reward statistics, advantage stats, a jsonl writer, W&B mirror.

Metric names (every step, also documented in the README):

    reward/<name>/{mean,std,min,max,cv,weight,zero_var_frac,adv_share}
    reward/total/mean                 mean of the weighted sum of the rewards
    adv/{mean,std,min,max,abs_mean}
    response/{length_mean,length_max,clip_frac}   (clip_frac: share of samples cut at max length)
    actor/{pg_loss,kl,clip_frac,approx_kl,entropy,grad_norm,lr}
    perf/{tokens_per_s,rollout_tokens_per_s}
    time/{rollout,rewards,advantages,update,sync,step}   seconds
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor

from saw.algo.advantages import group_index_of, group_normalise
from saw.algo.weighting import masked_column_stats

log = logging.getLogger(__name__)


def reward_stats(rewards: Tensor, group_ids: Tensor, names: Sequence[str], info: dict[str, Tensor],
                 reward_min: Tensor) -> dict[str, float]:
    """Per-reward statistics of rewards Tensor[N, K] for logging."""
    r = rewards.double()
    mean, std, count = masked_column_stats(r)
    index, g = group_index_of(group_ids)
    # zero-variance groups: within-group std == 0 (no learning signal from that reward)
    centred = group_normalise(r, index, g, eps=0.0, scale=False)
    sq = torch.zeros(g, r.shape[1], dtype=r.dtype).index_add_(0, index, centred.pow(2))
    zero_var = (sq <= 1e-12).double().mean(0)
    per_adv = group_normalise(r, index, g)  # [N, K] per-reward normalised advantages
    weights = info.get("weights")
    contrib = per_adv.abs() * (weights.double().abs() if weights is not None else 1.0)
    share = contrib.sum(0) / contrib.sum().clamp(min=1e-12)
    out: dict[str, float] = {}
    valid = ~torch.isnan(r)
    for j, name in enumerate(names):
        col = r[:, j][valid[:, j]]
        pre = f"reward/{name}/"
        out[pre + "mean"] = float(mean[j]) if count[j] > 0 else float("nan")
        out[pre + "std"] = float(std[j])
        out[pre + "min"] = float(col.min()) if col.numel() else float("nan")
        out[pre + "max"] = float(col.max()) if col.numel() else float("nan")
        out[pre + "cv"] = float(info["cv"][j]) if "cv" in info else float("nan")
        out[pre + "weight"] = float(weights[j]) if weights is not None else 1.0
        out[pre + "zero_var_frac"] = float(zero_var[j])
        out[pre + "adv_share"] = float(share[j])
    return out


def tensor_stats(prefix: str, x: Tensor) -> dict[str, float]:
    x = x.double()
    return {f"{prefix}/mean": float(x.mean()), f"{prefix}/std": float(x.std()) if x.numel() > 1 else 0.0,
            f"{prefix}/min": float(x.min()), f"{prefix}/max": float(x.max()),
            f"{prefix}/abs_mean": float(x.abs().mean())}


def _jsonable(v: Any) -> Any:
    if isinstance(v, Tensor):
        v = v.item() if v.numel() == 1 else v.tolist()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


class MetricsWriter:
    """Appends one json object per step to ``metrics.jsonl`` (flushed and fsynced per line).

    On resume from the checkpoint of step s, lines with a step > s are dropped first (they came
    after the checkpoint and will be recomputed), so the file never holds two records of one step.
    """

    def __init__(self, path: str | os.PathLike, resume_step: int | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.exists():
            kept = [ln for ln in self.path.read_text().splitlines()
                    if ln.strip() and json.loads(ln).get("step", -1) <= resume_step]
            tmp = self.path.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(ln + "\n" for ln in kept))
            os.replace(tmp, self.path)
        self._fh = open(self.path, "a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps({k: _jsonable(v) for k, v in record.items()}, sort_keys=True) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All records of a metrics.jsonl (a torn last line from a crash is skipped)."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                log.warning("%s:%d is not valid json (torn write?); skipped", path, i)
    return rows
