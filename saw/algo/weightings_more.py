"""More multi-reward schemes from concurrent papers, in this repo's two registries.

Each one is either a reward weighting (``WEIGHTINGS``: K weights per step, usable on both hosts)
or an advantage estimator (``ESTIMATORS``: the method decides per prompt group how the K
per-reward advantages are combined, so it cannot be expressed as K batch-level weights)::

    sa_mrpo   weighting   SA-MRPO (arXiv 2608.16072): w_k = alpha_k (1 - s_k)^gamma,
                          s_k = (mean_batch(r_k) - r_min_k) / (r_max_k - r_min_k) clipped to [0, 1]
    mo_grpo   estimator   MO-GRPO (arXiv 2509.22047, Eq. 5): R = sum_k c_k z_k with
                          z_k = (r_k - mean_group(r_k)) / std_group(r_k); then GRPO's advantage
                          on R: A = (R - mean_group(R)) / (std_group(R) + eps)
    dvao      estimator   DVAO (arXiv 2605.25604, Sec. 3): A = sum_k wt_gk z_k with
                          wt_gk = c_k sigma_gk / sum_l c_l sigma_gl, sigma_gk = std_group(r_k)

``c_k`` are the coefficients the configured weighting hands the estimator (static: the configured
``weights``, default 1; a dynamic weighting such as SAW composes on top). All statistics in float64,
vectorised with scatter/index operations, NaN = "not applicable" as everywhere else
(``saw/algo/advantages.py``). Group std is the unbiased (ddof=1) one of ``group_normalise``.

Sources and what could be checked (the arXiv HTML of these papers was not reachable from this
environment; each formula below was taken from a detailed public review of the paper's method
section and cross-checked against the abstract):
  - SA-MRPO: per-objective group standardisation, batch saturation ratio, w_k (1 - s_k)^gamma,
    re-standardisation over the batch; gamma = 0 is GDPO, the paper recommends gamma = 0.5.
    Equation numbers of the method section not verified (the paper's Eq. 2 is its first-order
    retention analysis, not the weights).
  - MO-GRPO: the per-objective within-group z-score summed over objectives is the paper's Eq. 5;
    MO-GRPO is GRPO with that reward, so GRPO's group normalisation follows.
  - DVAO: the variance-adaptive weights and A_DVAO are the method section's (Sec. 3) definitions;
    equation numbers not verified.
GD^2PO (arXiv 2606.16771) is not here: it masks conflicting rollouts and reweights queries
(a sample filter, not a reward weighting); see the report of issue 18.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

from saw.algo.advantages import ESTIMATORS, group_normalise, whiten_advantages
from saw.algo.weighting import WEIGHTINGS, Weighting, coefficient_of_variation, masked_column_stats


# ----------------------------------------------------------------------------------------------
# SA-MRPO: saturation-aware weights
# ----------------------------------------------------------------------------------------------
def saturation(rewards: Tensor, reward_min: Tensor, reward_max: Tensor) -> Tensor:
    """Batch saturation s_k = (mean(r_k) - r_min_k) / (r_max_k - r_min_k), clipped to [0, 1].

    rewards: Tensor[N, K] (NaN = not applicable, left out of the mean); bounds: Tensor[K].
    A column with no valid entry has saturation 0 (nothing learned about it yet).
    """
    mean, _, count = masked_column_stats(rewards)
    s = (mean - reward_min) / (reward_max - reward_min)
    s = torch.where(count > 0, s, torch.zeros_like(s))
    return s.clamp(0.0, 1.0)


def sa_mrpo_weights(rewards: Tensor, reward_min: Tensor, reward_max: Tensor, gamma: float = 0.5) -> Tensor:
    """SA-MRPO's saturation discount (1 - s_k)^gamma, Tensor[K] in [0, 1] (gamma = 0: all ones)."""
    return (1.0 - saturation(rewards, reward_min, reward_max)).pow(float(gamma))


@WEIGHTINGS.register("sa_mrpo", aliases=("samrpo",),
                     description="SA-MRPO, arXiv 2608.16072: alpha_k (1 - saturation_k)^gamma")
class SaturationWeighting(Weighting):
    """SA-MRPO (Wang et al., arXiv 2608.16072): weights w_k = alpha_k (1 - s_k)^gamma.

    s_k = (batch mean of r_k - r_min_k) / (r_max_k - r_min_k) is how much of reward k's attainable
    range the batch already realises. On the GDPO host (the paper's setting) the weights multiply
    the per-reward group-normalised advantages and the sum is whitened over the batch; gamma = 0
    gives GDPO exactly. On the GRPO host they weight the rewards before the group normalisation
    (this repo's host extension, not evaluated by the paper).

    Not normalised: the weights are the discounts themselves (a saturated reward's advantage is
    scaled down, the others are kept), so the GDPO host does not rescale them by K.

    Options (``algorithm.sa_mrpo``): ``gamma`` (>= 0, the paper's recommendation 0.5) and
    ``reward_max`` (each reward's theoretical maximum, one per reward or one for all; null = the
    maxima the rewards declare, which the trainer passes every step).
    """

    name = "sa_mrpo"
    normalized = False
    needs_reward_min = True

    def __init__(self, num_rewards: int, *, gamma: float = 0.5,
                 reward_max: float | Sequence[float] | None = None, **options: Any):
        super().__init__(num_rewards, **options)
        if gamma is None or float(gamma) < 0:
            raise ValueError(f"algorithm.sa_mrpo.gamma must be >= 0 (0 = GDPO; the paper uses 0.5), got {gamma}")
        self.gamma = float(gamma)
        self.reward_max = None  # None: use the reward_max the caller passes (the rewards' declared maxima)
        if reward_max is None:
            return
        rmax = torch.as_tensor(reward_max, dtype=torch.float64).flatten()
        if rmax.numel() not in (1, num_rewards):
            raise ValueError(f"algorithm.sa_mrpo.reward_max has {rmax.numel()} entries, the run has "
                             f"{num_rewards} rewards")
        if not bool(torch.isfinite(rmax).all()):
            raise ValueError(f"algorithm.sa_mrpo.reward_max must be finite, got {rmax.tolist()}")
        self.reward_max = rmax.expand(num_rewards).clone()

    @torch.no_grad()
    def __call__(self, rewards: Tensor, *, reward_min: Tensor, priorities: Tensor,
                 delta: float = 1e-8, reward_max: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        rmax = self.reward_max if self.reward_max is not None else reward_max
        if rmax is None:
            raise ValueError("SA-MRPO needs each reward's theoretical maximum: pass reward_max (the trainer passes "
                             f"the rewards' declared maxima) or set algorithm.sa_mrpo.reward_max (a list of "
                             f"{self.num_rewards}, in the task's reward order)")
        r = rewards.double()
        rmin = reward_min.double()
        rmax = rmax.double().to(device=r.device)
        if bool((rmax <= rmin).any()):
            raise ValueError(f"algorithm.sa_mrpo.reward_max {rmax.tolist()} must exceed each reward's "
                             f"minimum {rmin.tolist()}")
        s = saturation(r, rmin, rmax)
        discount = (1.0 - s).pow(self.gamma)
        cv = coefficient_of_variation(r, rmin, delta)
        return (discount * priorities.double()).to(rewards.dtype), {"cv": cv, "saturation": s,
                                                                   "sa_mrpo_discount": discount}


# ----------------------------------------------------------------------------------------------
# shared group statistics
# ----------------------------------------------------------------------------------------------
def group_std(values: Tensor, group_index: Tensor, num_groups: int) -> Tensor:
    """Unbiased within-group std per reward: values Tensor[N, K] -> Tensor[G, K] (NaN ignored;
    fewer than two valid entries in a group: 0), the std ``group_normalise`` divides by."""
    valid = ~torch.isnan(values)
    zero = torch.zeros((), dtype=values.dtype, device=values.device)
    filled = torch.where(valid, values, zero)
    k = values.shape[1]
    acc = lambda x: torch.zeros(num_groups, k, dtype=values.dtype, device=values.device).index_add_(0, group_index, x)  # noqa: E731
    counts = acc(valid.to(values.dtype))
    mean = acc(filled) / counts.clamp(min=1)
    centred = torch.where(valid, values - mean[group_index], zero)
    var = acc(centred.pow(2)) / (counts - 1).clamp(min=1)
    return torch.where(counts >= 2, var.sqrt(), torch.zeros_like(var))


# ----------------------------------------------------------------------------------------------
# MO-GRPO
# ----------------------------------------------------------------------------------------------
@ESTIMATORS.register("mo_grpo", aliases=("mogrpo",), per_reward=True, default_whiten="none",
                     description="MO-GRPO, arXiv 2509.22047: GRPO on the sum of per-reward group z-scores")
def mo_grpo_advantages(rewards, coeffs, group_index, num_groups, *, eps=1e-6, whiten="none",
                       token_counts=None):
    """MO-GRPO (Ichihara et al., arXiv 2509.22047): R = sum_k c_k z_k with z_k the within-group
    z-score of reward k (Eq. 5), then GRPO's advantage (R - mean_group) / (std_group + eps). -> A[N].

    Every reward enters with unit within-group variance whatever its scale; unlike GDPO the final
    normalisation is per prompt group, not over the batch.
    """
    per_reward = group_normalise(rewards, group_index, num_groups, eps=eps, scale=True)  # [N, K]
    total = per_reward @ coeffs
    adv = group_normalise(total, group_index, num_groups, eps=eps, scale=True)
    out = whiten_advantages(adv, mode=whiten, token_counts=token_counts, eps=eps)
    return out, {"per_reward_advantages": per_reward, "scalar_reward": total}


# ----------------------------------------------------------------------------------------------
# DVAO
# ----------------------------------------------------------------------------------------------
def dvao_group_weights(rewards: Tensor, coeffs: Tensor, group_index: Tensor, num_groups: int) -> Tensor:
    """DVAO's per-group weights wt_gk = c_k sigma_gk / sum_l c_l sigma_gl, Tensor[G, K].

    A group whose every reward is flat (all sigma_gk = 0) gets weights 0 (its per-reward
    advantages are all 0 anyway).
    """
    sigma = group_std(rewards, group_index, num_groups)  # [G, K]
    raw = sigma * coeffs
    total = raw.sum(1, keepdim=True)
    return torch.where(total > 0, raw / total.clamp(min=1e-300), torch.zeros_like(raw))


@ESTIMATORS.register("dvao", per_reward=True, default_whiten="none",
                     description="DVAO, arXiv 2605.25604: per-reward advantages weighted by in-group std")
def dvao_advantages(rewards, coeffs, group_index, num_groups, *, eps=1e-6, whiten="none",
                    token_counts=None):
    """DVAO (Jiang et al., arXiv 2605.25604): A = sum_k wt_gk z_k, wt_gk = c_k sigma_gk / sum_l c_l sigma_gl.

    z_k is reward k normalised within its prompt group, sigma_gk its within-group std: a reward
    that still varies within the group (a learning signal) gets more of that group's advantage,
    a flat (saturated or hopeless) one gets none. The weights sum to one per group, so |A| is at
    most the largest |z_k|. The scale of c cancels. -> A[N].
    """
    per_reward = group_normalise(rewards, group_index, num_groups, eps=eps, scale=True)  # [N, K]
    wg = dvao_group_weights(rewards, coeffs, group_index, num_groups)  # [G, K]
    adv = (per_reward * wg[group_index]).sum(1)
    out = whiten_advantages(adv, mode=whiten, token_counts=token_counts, eps=eps)
    return out, {"per_reward_advantages": per_reward, "dvao_weights": wg.mean(0)}
