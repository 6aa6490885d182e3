"""Advantage estimators for multi-reward outcome RL, with pluggable reward weightings.

``compute_advantages`` is the one entry point: it runs the configured weighting (static, SAW,
...) on the reward matrix and feeds the weights to the configured estimator::

    grpo        R = sum_k w_k r_k;  A = (R - mean_group(R)) / (std_group(R) + eps)
    grpo_nostd  R = sum_k w_k r_k;  A = R - mean_group(R)              (Dr.GRPO's advantage)
    gdpo        A_k = (r_k - mean_group(r_k)) / (std_group(r_k) + eps)  per reward k
                A = whiten_batch(sum_k c_k A_k),  c_k = K w_k for normalised weightings (SAW);
                whitening per token by default, as the SAW authors' code (verl's masked_whiten)

Group statistics use the unbiased (ddof=1) std, as verl does; a group of one gets advantage 0.
NaN rewards ("not applicable") contribute 0 to the GRPO sum and are left out of the GDPO group
statistics (their per-reward advantage is 0). Everything is vectorised over the batch with
scatter/index operations (no Python loop over samples or groups) and computed in float64.

An estimator is a registered function

    fn(rewards: Tensor[N, K], coeffs: Tensor[K], group_index: Tensor[N] (0..G-1), num_groups: int,
       *, eps: float, whiten: str, token_counts: Tensor[N] | None) -> (Tensor[N], dict)

whose registry metadata declares what ``compute_advantages`` must know about it:
``per_reward=True`` (it combines per-reward advantages, so normalised weightings are rescaled by
K, as GDPO+SAW does) and ``default_whiten`` (its batch whitening when the config says none).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from saw.core.registry import Registry
from saw.algo.weighting import WEIGHTINGS, Weighting, _as_vector, build_weighting

ESTIMATORS: Registry = Registry("advantage estimator")

# Names used by the SAW authors' code: estimator "-h" variants are the host + SAW weighting.
ALGORITHM_ALIASES = {"grpo-h": ("grpo", "saw"), "gdpo-h": ("gdpo", "saw")}

WHITEN_MODES = ("sequence", "token", "none")


def group_index_of(group_ids: Tensor) -> tuple[Tensor, int]:
    """Map arbitrary integer group ids Tensor[N] to dense indices 0..G-1. Returns (index, G)."""
    if group_ids.dim() != 1:
        raise ValueError(f"group_ids must be a Tensor[N], got shape {tuple(group_ids.shape)}")
    if group_ids.dtype.is_floating_point:
        raise TypeError("group_ids must be an integer tensor")
    uniq, index = torch.unique(group_ids, return_inverse=True)
    return index, int(uniq.numel())


def group_normalise(
    values: Tensor, group_index: Tensor, num_groups: int, *, eps: float = 1e-6, scale: bool = True
) -> Tensor:
    """Per-group centring (and scaling by the unbiased group std) of ``values``.

    values: Tensor[N] or Tensor[N, K] (NaN entries are ignored and get 0);
    group_index: Tensor[N] in 0..G-1. Returns a tensor of the shape of ``values``.
    Groups (or reward columns within a group) with fewer than two valid entries get 0.
    """
    squeeze = values.dim() == 1
    x = values.unsqueeze(1) if squeeze else values
    valid = ~torch.isnan(x)
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    filled = torch.where(valid, x, zero)
    k = x.shape[1]
    sums = torch.zeros(num_groups, k, dtype=x.dtype, device=x.device).index_add_(0, group_index, filled)
    counts = torch.zeros(num_groups, k, dtype=x.dtype, device=x.device).index_add_(
        0, group_index, valid.to(x.dtype)
    )
    mean = sums / counts.clamp(min=1)
    centred = torch.where(valid, x - mean[group_index], zero)
    if scale:
        sq = torch.zeros(num_groups, k, dtype=x.dtype, device=x.device).index_add_(
            0, group_index, centred.pow(2)
        )
        std = (sq / (counts - 1).clamp(min=1)).sqrt()
        std_i = std[group_index]
        # a flat group (std 0) has every centred value 0: keep it 0 even with eps = 0
        out = torch.where(std_i > 0, centred / (std_i + eps), zero)
    else:
        out = centred
    enough = counts[group_index] >= 2
    out = torch.where(enough & valid, out, zero)
    return out.squeeze(1) if squeeze else out


def whiten_advantages(advantages: Tensor, *, mode: str = "sequence", token_counts: Tensor | None = None,
                      eps: float = 1e-6, token_eps: float = 1e-8) -> Tensor:
    """Batch whitening of advantages Tensor[N].

    sequence: every response counts once, ``(A - mean) / (std + eps)`` (unbiased std; TRL's GDPO).
    token: verl's ``masked_whiten`` over the [N, T] broadcast of A, as the SAW authors' GDPO does:
        every response counts with its number of valid tokens n_i (``token_counts``), the variance
        is unbiased over the M = sum_i n_i tokens, and ``(A - mean) * rsqrt(var + token_eps)``
        (token_eps 1e-8 inside the square root, verl/utils/torch_functional.py ``masked_whiten``).
        Without ``token_counts`` every response counts as one token.
    """
    if mode == "none":
        return advantages
    if mode == "sequence":
        if advantages.numel() < 2:
            return torch.zeros_like(advantages)
        return (advantages - advantages.mean()) / (advantages.std() + eps)
    if mode == "token":
        w = torch.ones_like(advantages) if token_counts is None else token_counts.to(advantages.dtype)
        total = w.sum()
        if total < 2:
            return torch.zeros_like(advantages)
        mean = (w * advantages).sum() / total
        var = (w * (advantages - mean).pow(2)).sum() / total * (total / (total - 1))
        return (advantages - mean) * torch.rsqrt(var + token_eps)
    raise ValueError(f"unknown whiten mode {mode!r}; valid modes: {', '.join(WHITEN_MODES)}")


@ESTIMATORS.register("grpo")
def grpo_advantages(rewards, coeffs, group_index, num_groups, *, eps=1e-6, whiten="none",
                    token_counts=None, penalty=None):
    """GRPO: scalarise with the weights (minus ``penalty`` Tensor[N], e.g. a KL in the reward),
    then per-group (R - mean) / (std + eps). -> A[N]."""
    total = _scalarise(rewards, coeffs, penalty)
    adv = group_normalise(total, group_index, num_groups, eps=eps, scale=True)
    return whiten_advantages(adv, mode=whiten, token_counts=token_counts, eps=eps), {"scalar_reward": total}


@ESTIMATORS.register("grpo_nostd")
def grpo_nostd_advantages(rewards, coeffs, group_index, num_groups, *, eps=1e-6, whiten="none",
                          token_counts=None, penalty=None):
    """GRPO without the std division: A = R - mean_group(R). -> A[N]. (Dr.GRPO also changes the
    loss normaliser: conf/algorithm/drgrpo.yaml.)"""
    total = _scalarise(rewards, coeffs, penalty)
    adv = group_normalise(total, group_index, num_groups, eps=eps, scale=False)
    return whiten_advantages(adv, mode=whiten, token_counts=token_counts, eps=eps), {"scalar_reward": total}


def _scalarise(rewards: Tensor, coeffs: Tensor, penalty: Tensor | None) -> Tensor:
    """R = sum_k c_k r_k (NaN counts 0) - penalty: Tensor[N, K] -> Tensor[N]."""
    total = torch.nan_to_num(rewards, nan=0.0) @ coeffs
    return total if penalty is None else total - penalty.to(total.dtype)


@ESTIMATORS.register("gdpo", per_reward=True, default_whiten="token")
def gdpo_advantages(rewards, coeffs, group_index, num_groups, *, eps=1e-6, whiten="token",
                    token_counts=None):
    """GDPO: normalise every reward within its group, sum with the weights, whiten. -> A[N]."""
    per_reward = group_normalise(rewards, group_index, num_groups, eps=eps, scale=True)  # [N, K]
    adv = per_reward @ coeffs
    out = whiten_advantages(adv, mode=whiten, token_counts=token_counts, eps=eps)
    return out, {"per_reward_advantages": per_reward}


def resolve_algorithm(estimator: str, weighting: str) -> tuple[str, str]:
    """Canonical (estimator, weighting) names; accepts the authors' "grpo-h"/"gdpo-h" aliases."""
    key = estimator.lower() if isinstance(estimator, str) else estimator
    if key in ALGORITHM_ALIASES:
        est, w = ALGORITHM_ALIASES[key]
        if weighting not in ("static", w):
            raise ValueError(f"estimator {estimator!r} implies weighting {w!r}, got {weighting!r}")
        return est, w
    return ESTIMATORS.canonical(estimator), WEIGHTINGS.canonical(weighting)


def compute_advantages(
    rewards: Tensor,
    group_ids: Tensor,
    *,
    estimator: str,
    weighting: str | Weighting = "static",
    weights: Sequence[float] | Tensor | None = None,
    reward_min: Sequence[float] | Tensor | None = None,
    reward_max: Sequence[float] | Tensor | None = None,
    delta: float = 1e-8,
    eps: float = 1e-6,
    whiten: str | None = None,
    token_counts: Tensor | None = None,
    penalty: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Advantages Tensor[N] for rewards Tensor[N, K] and group ids Tensor[N].

    ``weighting`` is a registered name or a :class:`~saw.algo.weighting.Weighting` object (a
    stateful one, e.g. "+Gradient", is built once by the trainer and passed in every step).
    ``weights`` are the static weights (weighting="static") or the priorities alpha
    (dynamic weightings); default all ones. ``reward_min`` Tensor[K] is each reward's theoretical
    minimum (required by weightings that declare ``needs_reward_min``, e.g. SAW; defaults to the
    batch minimum for the other weightings' CV report); ``reward_max`` Tensor[K] each reward's
    theoretical maximum (for weightings that use it, e.g. SA-MRPO). ``whiten`` defaults to the estimator's
    own convention (its ``default_whiten``). ``penalty`` Tensor[N] is subtracted from the
    scalarised reward (the authors' KL-in-reward of plain GRPO); only estimators that scalarise the
    rewards (not ``per_reward`` ones) accept it.

    Returns (advantages Tensor[N] in the dtype of ``rewards``, info) where info holds "cv"
    Tensor[K], "weights" Tensor[K] (the coefficients actually applied) and estimator extras.
    """
    if rewards.dim() == 1:
        rewards = rewards.unsqueeze(1)
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be a Tensor[N, K], got shape {tuple(rewards.shape)}")
    n, k = rewards.shape
    if group_ids.shape != (n,):
        raise ValueError(f"group_ids must be a Tensor[{n}], got shape {tuple(group_ids.shape)}")
    if k == 0:
        raise ValueError("rewards has no columns (K = 0)")
    if isinstance(weighting, Weighting):
        est_name, w_obj = resolve_algorithm(estimator, "static")[0], weighting
    else:
        est_name, w_name = resolve_algorithm(estimator, weighting)
        w_obj = build_weighting(w_name, k)
    if w_obj.num_rewards != k:
        raise ValueError(f"weighting {w_obj.name!r} was built for K={w_obj.num_rewards} rewards, the batch has K={k}")
    out_dtype = rewards.dtype if rewards.is_floating_point() else torch.float32
    r = rewards.detach().to(torch.float64)
    device = r.device
    if reward_min is None:
        if w_obj.needs_reward_min:
            raise ValueError(f"weighting {w_obj.name!r} needs reward_min (each reward's theoretical minimum)")
        col_min = torch.nan_to_num(r, nan=float("inf")).min(dim=0).values
        reward_min = torch.where(torch.isfinite(col_min), col_min, torch.zeros_like(col_min))
    rmin = _as_vector(reward_min, k, name="reward_min", dtype=torch.float64, device=device)
    prio = _as_vector(weights, k, name="weights", dtype=torch.float64, device=device, default=1.0)
    if torch.any(~torch.isfinite(prio)):
        raise ValueError(f"weights must be finite, got {prio.tolist()}")

    rmax = None if reward_max is None else _as_vector(reward_max, k, name="reward_max", dtype=torch.float64,
                                                      device=device)
    with torch.no_grad():
        w, info = w_obj(r, reward_min=rmin, priorities=prio, delta=delta, reward_max=rmax)
    est_meta = ESTIMATORS.meta(est_name)
    coeffs = w * k if (est_meta.get("per_reward") and w_obj.normalized) else w
    mode = whiten if whiten is not None else est_meta.get("default_whiten", "none")
    if mode not in WHITEN_MODES:
        raise ValueError(f"unknown whiten mode {mode!r}; valid modes: {', '.join(WHITEN_MODES)}")
    tc = token_counts.to(device) if token_counts is not None else None
    extra_args = {}
    if penalty is not None:
        if est_meta.get("per_reward"):
            raise ValueError(f"estimator {est_name!r} combines per-reward advantages and takes no reward penalty "
                             "(e.g. kl.reward_coef); use a scalarising estimator (grpo, grpo_nostd) or a KL loss")
        if penalty.shape != (n,):
            raise ValueError(f"penalty must be a Tensor[{n}], got shape {tuple(penalty.shape)}")
        extra_args["penalty"] = penalty.detach().to(device=device, dtype=torch.float64)
    index, num_groups = group_index_of(group_ids.to(device))
    adv, extra = ESTIMATORS.get(est_name)(r, coeffs, index, num_groups, eps=eps, whiten=mode,
                                          token_counts=tc, **extra_args)
    info = {**info, **extra, "weights": coeffs}
    return adv.to(out_dtype), {key: val.to(out_dtype) for key, val in info.items()}
