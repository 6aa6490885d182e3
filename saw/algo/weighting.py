"""Reward weightings: how the K rewards of a step are weighted against each other.

A weighting is a registered function

    fn(rewards: Tensor[N, K], *, reward_min: Tensor[K], priorities: Tensor[K],
       delta: float, **state) -> (weights: Tensor[K], info: dict[str, Tensor])

``weights`` are the coefficients the estimator applies (to rewards for GRPO, to per-reward
advantages for GDPO). Weightings registered with ``normalized=True`` return weights that sum to
one (times the priorities); the GDPO host rescales those by K so that equal weights reproduce
plain GDPO (DESIGN.md section 1). Weights are constants for the gradient: they are computed
under ``torch.no_grad`` and returned detached.

SAW (Stage-Aware Dynamic Weighting), per reward k over the whole batch of N responses::

    shifted_k = r_k - r_min_k + delta
    cv_k      = std(shifted_k, ddof=1) / (|mean(shifted_k)| + delta)
    w'_k      = cv_k / sum_j cv_j        (equal weights 1/K when sum_j cv_j < delta)

NaN entries mean "reward not applicable to this sample" and are left out of that column's
statistics; a column with fewer than two valid entries has CV 0.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from saw.core.registry import Registry

WEIGHTINGS: Registry = Registry("weighting")


def _as_vector(values, k: int, *, name: str, dtype, device, default: float | None = None) -> Tensor:
    """Turn a scalar / sequence / Tensor into a float Tensor[k] (``default`` fills None)."""
    if values is None:
        if default is None:
            raise ValueError(f"{name} is required")
        return torch.full((k,), float(default), dtype=dtype, device=device)
    vec = torch.as_tensor(values, dtype=dtype, device=device).flatten()
    if vec.numel() == 1 and k != 1:
        vec = vec.expand(k).clone()
    if vec.numel() != k:
        raise ValueError(f"{name} has {vec.numel()} entries but the batch has K={k} rewards")
    return vec


def masked_column_stats(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-column mean, unbiased std and count of the non-NaN entries of ``x`` [N, K].

    Returns (mean [K], std [K], count [K]); columns with < 2 valid entries get std 0.
    """
    valid = ~torch.isnan(x)
    count = valid.sum(dim=0)
    filled = torch.where(valid, x, torch.zeros((), dtype=x.dtype, device=x.device))
    mean = filled.sum(dim=0) / count.clamp(min=1)
    centred = torch.where(valid, x - mean, torch.zeros((), dtype=x.dtype, device=x.device))
    var = centred.pow(2).sum(dim=0) / (count - 1).clamp(min=1)
    std = torch.where(count >= 2, var.sqrt(), torch.zeros_like(var))
    return mean, std, count


def coefficient_of_variation(rewards: Tensor, reward_min: Tensor, delta: float = 1e-8) -> Tensor:
    """CV of each reward column after shifting it by its theoretical minimum.

    rewards: Tensor[N, K] (NaN = not applicable); reward_min: Tensor[K]. Returns Tensor[K] >= 0.
    """
    shifted = rewards - reward_min + delta
    mean, std, _ = masked_column_stats(shifted)
    # |mean| is mean for rewards inside their declared range; abs keeps CV >= 0 otherwise.
    return std / (mean.abs() + delta)


@torch.no_grad()
def saw_weights(
    rewards: Tensor, reward_min: Sequence[float] | Tensor, delta: float = 1e-8
) -> Tensor:
    """SAW weights w' (Tensor[K], non-negative, sums to 1) for rewards Tensor[N, K]."""
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be a Tensor[N, K], got shape {tuple(rewards.shape)}")
    r = rewards.detach().to(torch.float64)
    k = r.shape[1]
    rmin = _as_vector(reward_min, k, name="reward_min", dtype=torch.float64, device=r.device)
    cv = coefficient_of_variation(r, rmin, delta)
    return _normalise_cv(cv, delta).to(rewards.dtype if rewards.is_floating_point() else torch.float32)


def _normalise_cv(cv: Tensor, delta: float) -> Tensor:
    total = cv.sum()
    equal = torch.full_like(cv, 1.0 / cv.numel())
    return torch.where(total >= delta, cv / total.clamp(min=delta), equal)


@WEIGHTINGS.register("static", normalized=False)
@torch.no_grad()
def static_weighting(rewards: Tensor, *, reward_min: Tensor, priorities: Tensor, delta: float = 1e-8,
                     **_: object) -> tuple[Tensor, dict[str, Tensor]]:
    """Fixed weights: the configured ``weights`` (default all ones). CV is still reported."""
    cv = coefficient_of_variation(rewards, reward_min, delta)
    return priorities.clone(), {"cv": cv}


@WEIGHTINGS.register("saw", normalized=True)
@torch.no_grad()
def saw_weighting(rewards: Tensor, *, reward_min: Tensor, priorities: Tensor, delta: float = 1e-8,
                  **_: object) -> tuple[Tensor, dict[str, Tensor]]:
    """SAW: w'_k * alpha_k with w' = CV_k / sum_j CV_j (DESIGN.md section 1)."""
    cv = coefficient_of_variation(rewards, reward_min, delta)
    w = _normalise_cv(cv, delta)
    return w * priorities, {"cv": cv, "saw_weights": w}
