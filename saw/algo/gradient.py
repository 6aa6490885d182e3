"""The "+Gradient" baseline: dynamic reward weighting of Lu et al. (arXiv 2509.11452).

Per step, for every objective k the trainer computes the policy gradient g_k of the surrogate
whose advantages come from reward k alone (group-normalised r_k), without an optimizer step. The
influence of objective k is s_k = sum_l g_k . g_l = g_k . (sum_l g_l), and the weights take a
mirror-descent (exponentiated-gradient) step on the simplex::

    w <- softmax(log w + eta * s / lambda)        eta: the current lr (or a fixed value), lambda: config

Options (``algorithm.gradient`` in the config), defaults as Lu et al.'s code
(yining610/dynamic-reward-weighting: ray_trainer_optimization.py, dp_actor.py ``compute_gradients``,
run_qwen3-8b_multiobjective_optimization.sh):

- ``lam`` (lambda, their ``regularization_factor``): 1e-5 in their Qwen3-8B GRPO scripts;
- ``eta``: None = the optimizer's current learning rate (their ``lr_t``);
- ``clip_norm``: each g_k is scaled to norm <= clip_norm, the norm taken over ALL parameters
  before the layer subset (their ``clip_grad_norm_(max_norm=grad_clip=1.0)``); None = no clipping;
- ``layer_span``: fractions [lo, hi) of the decoder depth whose parameters enter g_k. Their
  scripts use layers 10-25 of Qwen3-8B's 36 (``target_layer_ids``), i.e. [10/36, 26/36) =
  [0.278, 0.722); for other depths the same relative span (rounded to whole layers). None = all.

Each objective's loss is the update's own loss (PPO surrogate with the configured aggregation, KL
loss and entropy terms), as theirs includes the KL loss.

The rewards are then scalarised with w for the real update (a normalised weighting, so the GDPO
host applies K * w like SAW). The weights are state: the trainer saves them in checkpoints and
logs them as ``reward/<name>/weight``, the influences as ``reward/<name>/influence``.

Cost: one forward and K backward passes over the step's samples (the forward is shared by the K
objectives through ``retain_graph``), plus K flattened float32 gradient vectors (an all-reduce of
them across data-parallel ranks). Supported with ZeRO stages 0-2 (parameters whole on every rank).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import torch
from torch import Tensor

from saw.algo.advantages import group_index_of, group_normalise
from saw.algo.weighting import WEIGHTINGS, Weighting, WeightingProbe, coefficient_of_variation


@WEIGHTINGS.register("gradient")
class GradientWeighting(Weighting):
    """Lu et al.'s weights: state Tensor[K] on the simplex, moved once per step by ``update``."""

    name = "gradient"
    normalized = True
    needs_gradients = True

    def __init__(self, num_rewards: int, *, lam: float = 1e-5, eta: float | None = None,
                 clip_norm: float | None = None, layer_span: Iterable[float] | None = None,
                 eps: float = 1e-6, **options: Any):
        super().__init__(num_rewards, **options)
        if float(lam) <= 0:
            raise ValueError(f"algorithm.gradient.lam must be > 0, got {lam}")
        if clip_norm is not None and float(clip_norm) <= 0:
            raise ValueError(f"algorithm.gradient.clip_norm must be > 0 or null, got {clip_norm}")
        span = None if layer_span is None else tuple(float(x) for x in layer_span)
        if span is not None and not (len(span) == 2 and 0.0 <= span[0] < span[1] <= 1.0):
            raise ValueError(f"algorithm.gradient.layer_span must be [lo, hi) with 0 <= lo < hi <= 1, got {layer_span}")
        self.lam, self.eta, self.eps = float(lam), (None if eta is None else float(eta)), float(eps)
        self.clip_norm = None if clip_norm is None else float(clip_norm)
        self.layer_span = span
        self.weights = torch.full((num_rewards,), 1.0 / num_rewards, dtype=torch.float64)

    def update(self, probe: WeightingProbe) -> dict[str, Tensor]:
        """Per-objective gradients from the probe, influences, one mirror-descent step."""
        index, g = group_index_of(probe.group_ids)
        per_reward = group_normalise(probe.rewards.double(), index, g, eps=self.eps)  # [N, K]
        grads, full_norms = probe.objective_gradients(per_reward, layer_span=self.layer_span)  # [K, P], [K]
        if self.clip_norm is not None:
            grads = clip_rows(grads, self.clip_norm, norms=full_norms)
        influence = influence_from_grads(grads)
        eta = self.eta if self.eta is not None else float(probe.lr)
        self.weights = mirror_descent_step(self.weights, influence, eta, self.lam)
        return {"influence": influence}

    @torch.no_grad()
    def __call__(self, rewards: Tensor, *, reward_min: Tensor, priorities: Tensor,
                 delta: float = 1e-8, reward_max: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """The current weights (times the priorities); CV reported for comparison."""
        w = self.weights.to(dtype=rewards.dtype, device=rewards.device)
        cv = coefficient_of_variation(rewards, reward_min, delta)
        return w * priorities, {"cv": cv, "gradient_weights": w}

    def state_dict(self) -> dict[str, Any]:
        return {"weights": self.weights.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        w = torch.tensor(state["weights"], dtype=torch.float64)
        if w.shape != (self.num_rewards,):
            raise ValueError(f"checkpointed gradient weights have {w.numel()} entries, the run has "
                             f"{self.num_rewards} rewards")
        self.weights = w


def clip_rows(grads: Tensor, max_norm: float, norms: Tensor | None = None) -> Tensor:
    """Scale each row k of Tensor[K, P] by min(1, max_norm / norm_k), with ``norms`` Tensor[K]
    (default: the rows' own norms; the +Gradient weighting passes the norms over all parameters)."""
    norms = grads.double().norm(dim=1) if norms is None else norms.double()
    scale = (max_norm / norms.clamp(min=1e-30)).clamp(max=1.0).unsqueeze(1)
    return (grads.double() * scale).to(grads.dtype)


def mirror_descent_step(weights: Tensor, influence: Tensor, eta: float, lam: float) -> Tensor:
    """w <- softmax(log w + eta * s / lambda); weights, influence: Tensor[K] -> Tensor[K]."""
    if lam <= 0:
        raise ValueError(f"gradient weighting lambda must be > 0, got {lam}")
    logits = torch.log(weights.double().clamp(min=1e-30)) + eta * influence.double() / lam
    return torch.softmax(logits, dim=0).to(weights.dtype)


def influence_from_grads(grads: Tensor) -> Tensor:
    """s_k = sum_l g_k . g_l for stacked flattened gradients Tensor[K, P] -> Tensor[K]."""
    g = grads.double()
    return g @ g.sum(0)


def per_objective_gradients(params: list[Tensor], micro_losses: Iterable[Callable[[], list[Tensor]]],
                            k: int, all_reduce: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """Flattened gradients Tensor[K, P] of K objectives, accumulated over micro-batches.

    ``micro_losses`` yields, per micro-batch, a callable returning K scalar losses that share one
    forward pass (their sum over micro-batches is each objective's loss). Gradients are taken with
    ``torch.autograd.grad`` so the optimizer's ``.grad`` buffers are left untouched.
    """
    total = None
    for make in micro_losses:
        losses = make()
        if len(losses) != k:
            raise ValueError(f"expected {k} objective losses, got {len(losses)}")
        rows = []
        for j, loss in enumerate(losses):
            grads = torch.autograd.grad(loss, params, retain_graph=j < k - 1, allow_unused=True)
            rows.append(torch.cat([(g if g is not None else torch.zeros_like(p)).detach().float().flatten()
                                   for g, p in zip(grads, params)]))
        stacked = torch.stack(rows)
        total = stacked if total is None else total + stacked
    if total is None:
        raise ValueError("no micro-batches")
    if all_reduce is not None:
        total = all_reduce(total)
    return total
