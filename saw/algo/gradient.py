"""The "+Gradient" baseline: dynamic reward weighting of Lu et al. (arXiv 2509.11452).

Per step, for every objective k the trainer computes the policy gradient g_k of the surrogate
whose advantages come from reward k alone (group-normalised r_k), without an optimizer step. The
influence of objective k is s_k = sum_l g_k . g_l = g_k . (sum_l g_l), and the weights take a
mirror-descent (exponentiated-gradient) step on the simplex::

    w <- softmax(log w + eta * s / lambda)        eta: the current lr (or a fixed value), lambda: config

The rewards are then scalarised with w for the real update (``weighting="gradient"``, a
normalised weighting, so the GDPO host applies K * w like SAW). The weights are state: they are
saved in checkpoints and logged as ``reward/<name>/weight``.

Cost: one forward and K backward passes over the step's samples (the forward is shared by the K
objectives through ``retain_graph``), plus K flattened float32 gradient vectors (an all-reduce of
them across data-parallel ranks). Supported with ZeRO stages 0-2 (parameters whole on every rank).
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import Tensor

from saw.algo.weighting import WEIGHTINGS, coefficient_of_variation


@WEIGHTINGS.register("gradient", normalized=True, stateful=True)
@torch.no_grad()
def gradient_weighting(rewards: Tensor, *, reward_min: Tensor, priorities: Tensor, delta: float = 1e-8,
                       weights: Tensor | None = None, **_: object) -> tuple[Tensor, dict[str, Tensor]]:
    """Return the current Lu et al. weights (times the priorities); equal weights if none yet."""
    k = rewards.shape[1]
    w = torch.full((k,), 1.0 / k, dtype=rewards.dtype) if weights is None else \
        torch.as_tensor(weights, dtype=rewards.dtype).to(rewards.device)
    cv = coefficient_of_variation(rewards, reward_min, delta)
    return w * priorities, {"cv": cv, "gradient_weights": w}


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


def flat_grad(params: list[Tensor]) -> Tensor:
    """Concatenate the .grad of ``params`` (zeros where None) into one float32 vector Tensor[P]."""
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).detach().float().flatten()
                      for p in params])


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
