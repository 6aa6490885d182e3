"""How a step's work is laid out: which prompts come next, and how its samples split into ranks,
mini-batches and micro-batches; the prompt budget and seeding shared by RL and the SFT warm start.
Light (no model code), so that config validation can use it before anything loads."""

from __future__ import annotations

import random

import numpy as np
import torch
from omegaconf import DictConfig


class PromptSampler:
    """Deterministic, stateless-by-position sampler: record k of the stream is
    ``perm(epoch = k // len)[k % len]`` with a permutation seeded by (seed, epoch)."""

    def __init__(self, n_records: int, seed: int):
        if n_records <= 0:
            raise ValueError("the training split is empty")
        self.n, self.seed = n_records, seed
        self._perms: dict[int, list[int]] = {}

    def _perm(self, epoch: int) -> list[int]:
        if epoch not in self._perms:
            rnd = random.Random(self.seed * 1_000_003 + epoch)
            idx = list(range(self.n))
            rnd.shuffle(idx)
            self._perms = {epoch: idx}
        return self._perms[epoch]

    def take(self, position: int, count: int) -> list[int]:
        return [self._perm(k // self.n)[k % self.n] for k in range(position, position + count)]


def micro_layout(prompts_per_step: int, n: int, world: int, mini_batches: int, micro_batch_size: int,
                 shared_prefix: bool) -> tuple[int, int]:
    """(micro-batches per mini-batch, sequences per micro-batch) on one rank.

    With ``shared_prefix`` a micro-batch holds whole groups: max(1, micro_batch_size // n) of them.
    Raises ValueError when the step does not split evenly.
    """
    if shared_prefix:
        if prompts_per_step % (world * mini_batches):
            raise ValueError(f"trainer.prompts_per_step={prompts_per_step} must be divisible by ranks x "
                             f"trainer.mini_batches = {world * mini_batches} with trainer.shared_prefix")
        groups_per_mini = prompts_per_step // (world * mini_batches)
        per = max(1, micro_batch_size // n)
        if groups_per_mini % per:
            raise ValueError(f"{groups_per_mini} prompt groups per mini-batch do not split into micro-batches of "
                             f"{per} groups (trainer.micro_batch_size={micro_batch_size} // sampling.n={n}); "
                             f"pick micro_batch_size = n x a divisor of {groups_per_mini}")
        return groups_per_mini // per, per * n
    total = prompts_per_step * n
    if total % (world * mini_batches):
        raise ValueError(f"trainer.prompts_per_step * sampling.n = {total} samples cannot be split evenly into "
                         f"{world} rank(s) x trainer.mini_batches={mini_batches}; make the product divisible by "
                         f"{world * mini_batches}")
    mini = total // (world * mini_batches)
    micro = min(micro_batch_size, mini)
    if mini % micro:
        raise ValueError(f"each mini-batch has {mini} samples per rank, not a multiple of "
                         f"trainer.micro_batch_size={micro_batch_size}; pick a divisor of {mini}")
    return mini // micro, micro


def prompt_limit(cfg: DictConfig) -> int:
    """The prompt budget in tokens: ``trainer.max_prompt_length``, else the task's, else 1024."""
    return int(cfg.trainer.get("max_prompt_length") or cfg.task.get("max_prompt_length") or 1024)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
