"""Per-step training statistics: per-reward statistics and advantage stats (the jsonl writer is
``saw.core.io.MetricsWriter``, the W&B mirror ``saw.rl.tracking``).

Metric names (every step, also documented in the README):

    reward/<name>/{mean,std,min,max,cv,weight,zero_var_frac,adv_share,failures}
    reward/<name>/<diagnostic>        what a stateful weighting reports (e.g. +Gradient: influence)
    reward/total/mean                 mean of the weighted sum of the rewards
    adv/{mean,std,min,max,abs_mean}
    response/{length_mean,length_max,clip_frac}   (clip_frac: share of samples cut at max length)
    actor/{pg_loss,kl,clip_frac,approx_kl,entropy,grad_norm,lr}
    perf/{tokens_per_s,rollout_tokens_per_s}
    time/{rollout,rewards,advantages,update,sync,step}   seconds
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from saw.algo.advantages import group_index_of, group_normalise
from saw.algo.weighting import masked_column_stats


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
