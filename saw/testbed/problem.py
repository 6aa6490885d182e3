"""Synthetic multi-objective bandit problems whose objectives saturate at controlled stages.

A problem is a contextual bandit: P prompt types x A arms (the "responses"), and K objectives,
each arm having an expected reward per objective ``means`` Tensor[P, A, K] in [0, 1]. Rewards are
either the means themselves (deterministic: all within-group variance comes from the policy's
sampling) or Bernoulli draws with those probabilities. The exact expected reward of a tabular
policy is known, so learning curves carry no evaluation noise.

    staged       "easy" binary (75 % of the arms satisfy it: saturates within a few dozen steps)
                 + "hard" graded (one arm per prompt scores 1, the rest mostly low: saturates late);
                 two decoy arms per prompt score 0.7 on hard but fail easy (a conflict)
    unsaturated  two Bernoulli objectives whose success probabilities stay <= 0.55 / 0.45: neither
                 saturates, both keep within-group variance all through training

This is an instrument for the weighting mechanism (how weights react to saturation), not a
model of LLM training.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

VARIANTS = ("staged", "unsaturated")


@dataclass
class Problem:
    name: str
    objectives: tuple[str, ...]
    means: Tensor  # [P, A, K] expected reward of each arm, in [0, 1]
    bernoulli: bool  # rewards are Bernoulli(means) draws, else the means themselves
    reward_min: Tensor  # [K]
    reward_max: Tensor  # [K]

    @property
    def num_prompts(self) -> int:
        return self.means.shape[0]

    @property
    def num_arms(self) -> int:
        return self.means.shape[1]

    def sample(self, prompts: Tensor, actions: Tensor, gen: torch.Generator) -> Tensor:
        """Rewards Tensor[N, K] (float64) of arms ``actions`` [N] answered to ``prompts`` [N]."""
        m = self.means[prompts, actions]
        if not self.bernoulli:
            return m.clone()
        return (torch.rand(m.shape, generator=gen, dtype=torch.float64) < m).to(torch.float64)

    def expected(self, probs: Tensor) -> Tensor:
        """Expected reward per objective Tensor[K] of a policy ``probs`` [P, A], prompts uniform."""
        return torch.einsum("pa,pak->k", probs.double(), self.means).div(self.num_prompts)


def make_problem(name: str, *, num_prompts: int = 16, num_arms: int = 24, seed: int = 1234) -> Problem:
    """The problem ``name`` (one of VARIANTS); ``seed`` fixes the problem, not the training run."""
    g = torch.Generator().manual_seed(seed)
    p, a = num_prompts, num_arms
    if name == "staged":
        easy = (torch.rand(p, a, generator=g) < 0.75).double()
        hard = torch.rand(p, a, generator=g, dtype=torch.float64).pow(4) * 0.5  # mostly low
        order = torch.argsort(torch.rand(p, a, generator=g), dim=1)
        best, decoys = order[:, 0], order[:, 1:3]
        rows = torch.arange(p)
        hard[rows, best], easy[rows, best] = 1.0, 1.0
        for j in range(decoys.shape[1]):
            hard[rows, decoys[:, j]], easy[rows, decoys[:, j]] = 0.7, 0.0
        means, bern = torch.stack([easy, hard], dim=-1), False
    elif name == "unsaturated":
        easy = 0.1 + 0.4 * torch.rand(p, a, generator=g, dtype=torch.float64)
        hard = 0.3 * torch.rand(p, a, generator=g, dtype=torch.float64)
        best = torch.argsort(torch.rand(p, a, generator=g), dim=1)[:, 0]
        rows = torch.arange(p)
        easy[rows, best], hard[rows, best] = 0.55, 0.45
        means, bern = torch.stack([easy, hard], dim=-1), True
    else:
        raise ValueError(f"unknown testbed variant {name!r}; valid: {', '.join(VARIANTS)}")
    k = means.shape[-1]
    return Problem(name, ("easy", "hard"), means, bern, torch.zeros(k, dtype=torch.float64),
                   torch.ones(k, dtype=torch.float64))
