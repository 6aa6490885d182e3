"""Reward weightings: how the K rewards of a step are weighted against each other.

A weighting is an object built by name (``build_weighting("saw", num_rewards=K)``)::

    weights, info = weighting(rewards Tensor[N, K], reward_min=Tensor[K], priorities=Tensor[K], delta=...,
                              reward_max=Tensor[K] | None)
    diagnostics = weighting.update(probe)     # once per step, before the call (stateful ones only)
    weighting.state_dict() / load_state_dict(state)   # saved in checkpoints by the trainer

``weights`` Tensor[K] are the coefficients the estimator applies (to rewards for GRPO, to
per-reward advantages for GDPO). What the rest of the code needs to know about a weighting is
declared, not name-checked: ``normalized`` (weights sum to one times the priorities; estimators
that work on per-reward advantages rescale them by K so that equal weights reproduce plain GDPO)
and ``needs_reward_min`` (the weighting uses each reward's theoretical minimum).

Adding a stateless weighting is one registered function::

    @WEIGHTINGS.register("mine", normalized=True, needs_reward_min=False)
    def mine(rewards, *, reward_min, priorities, delta=1e-8, **_): return weights, {"cv": ...}

A stateful one is a registered :class:`Weighting` subclass (see ``saw/algo/gradient.py``).
Weights are constants for the gradient: they are computed under ``torch.no_grad``.

SAW (Stage-Aware Dynamic Weighting), per reward k over the whole batch of N responses::

    shifted_k = r_k - r_min_k + delta
    cv_k      = std(shifted_k, ddof=1) / (|mean(shifted_k)| + delta)
    w'_k      = cv_k / sum_j cv_j        (equal weights 1/K when sum_j cv_j < delta)

NaN entries mean "reward not applicable to this sample" and are left out of that column's
statistics; a column with fewer than two valid entries has CV 0.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, Sequence

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


class WeightingProbe(Protocol):
    """What a stateful weighting may ask the trainer for during ``update`` (implemented by saw.rl)."""

    rewards: Tensor  # [N, K] float64, this step's reward matrix
    group_ids: Tensor  # [N] prompt group of each response
    lr: float  # the optimizer's current learning rate

    def objective_gradients(self, advantages: Tensor, *,
                            layer_span: tuple[float, float] | None = None) -> tuple[Tensor, Tensor]:
        """(grads Tensor[K, P], full_norms Tensor[K]): the policy gradient of the surrogate of each
        advantage column [N, K], restricted to the parameters of the decoder layers in ``layer_span``
        (fractions of the depth; None = all), and each gradient's norm over ALL parameters."""


class Weighting:
    """A weighting of K rewards. Stateless weightings are registered functions wrapped by this
    class; stateful ones subclass it and override ``update``/``state_dict``/``load_state_dict``."""

    name: str = "weighting"
    normalized: bool = False  # weights sum to 1 (x priorities): per-reward estimators rescale by K
    needs_reward_min: bool = False  # uses each reward's theoretical minimum
    needs_gradients: bool = False  # its update asks the probe for per-objective gradients

    def __init__(self, num_rewards: int, **options: Any):
        if num_rewards < 1:
            raise ValueError(f"a weighting needs at least one reward, got num_rewards={num_rewards}")
        self.num_rewards = num_rewards
        self.options = options

    def __call__(self, rewards: Tensor, *, reward_min: Tensor, priorities: Tensor, delta: float = 1e-8,
                 reward_max: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:  # pragma: no cover
        """Weights Tensor[K] for rewards Tensor[N, K]; ``reward_max`` is each reward's declared
        maximum when the caller knows it (the trainer always does)."""
        raise NotImplementedError

    def update(self, probe: WeightingProbe) -> dict[str, Tensor]:
        """Advance the state once per step; returns per-reward diagnostics (Tensor[K] each)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"weighting {self.name!r} keeps no state, got {sorted(state)}")


class FunctionWeighting(Weighting):
    """A stateless weighting from a registered function (its registry metadata sets the flags)."""

    def __init__(self, name: str, fn: Callable, num_rewards: int, *, normalized: bool = False,
                 needs_reward_min: bool = False, **options: Any):
        super().__init__(num_rewards, **options)
        self.name, self.fn = name, fn
        self.normalized, self.needs_reward_min = normalized, needs_reward_min

    @torch.no_grad()
    def __call__(self, rewards, *, reward_min, priorities, delta=1e-8, reward_max=None):
        return self.fn(rewards, reward_min=reward_min, priorities=priorities, delta=delta, reward_max=reward_max,
                       **self.options)


def build_weighting(name: str | Weighting, num_rewards: int, **options: Any) -> Weighting:
    """The weighting registered as ``name`` for K = ``num_rewards`` rewards (objects pass through).

    ``options`` go to the weighting (e.g. the +Gradient weighting's ``lam``). Unknown names raise
    ValueError listing the valid ones.
    """
    if isinstance(name, Weighting):
        return name
    key = WEIGHTINGS.canonical(name)
    entry = WEIGHTINGS.get(key)
    if isinstance(entry, type) and issubclass(entry, Weighting):
        return entry(num_rewards, **options)
    return FunctionWeighting(key, entry, num_rewards, **WEIGHTINGS.meta(key), **options)


@WEIGHTINGS.register("static")
def static_weighting(rewards: Tensor, *, reward_min: Tensor, priorities: Tensor, delta: float = 1e-8,
                     **_: object) -> tuple[Tensor, dict[str, Tensor]]:
    """Fixed weights: the configured ``weights`` (default all ones). CV is still reported."""
    cv = coefficient_of_variation(rewards, reward_min, delta)
    return priorities.clone(), {"cv": cv}


@WEIGHTINGS.register("saw", normalized=True, needs_reward_min=True)
def saw_weighting(rewards: Tensor, *, reward_min: Tensor, priorities: Tensor, delta: float = 1e-8,
                  **_: object) -> tuple[Tensor, dict[str, Tensor]]:
    """SAW: w'_k * alpha_k with w' = CV_k / sum_j CV_j (DESIGN.md section 1)."""
    cv = coefficient_of_variation(rewards, reward_min, delta)
    w = _normalise_cv(cv, delta)
    return w * priorities, {"cv": cv, "saw_weights": w}
