"""One step's samples and how colocated rollout splits and joins them.

``rollout_placement: driver`` (trainer config): rank 0 generates and scores the whole step and
broadcasts it. ``colocated``: every rank generates and scores a contiguous shard of the step's
prompts with its own engine; ``merge_shards`` joins the shards in rank order, which is the order
of the prompts, so the joined step equals what one driver would have produced for the same
samples. Every batch statistic (SAW's CV, GDPO's whitening, the logged reward statistics) is then
computed on the whole step on every rank, as in the authors' single-driver computation; each rank
updates on the samples it generated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

PLACEMENTS = ("driver", "colocated")  # trainer.rollout_placement


@dataclass
class StepData:
    """The samples of one step (or of one rank's shard of it), grouped by prompt: N samples, K rewards."""

    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]
    texts: list[str]
    group_ids: torch.Tensor  # [N], 0..G-1, samples of a group contiguous
    finish_reasons: list[str]
    rewards: torch.Tensor  # [N, K] float64
    record_idx: list[int]  # [G] training-record index of each group
    rollout_seconds: float
    reward_seconds: float
    rollout_tokens: int
    rank_rollout_tokens_per_s: list[float] = field(default_factory=list)  # one per rank (colocated)


def prompt_shard(n_prompts: int, world: int, rank: int) -> range:
    """Positions of the step's prompts that ``rank`` generates: a contiguous block of n_prompts / world.

    Raises ValueError when the prompts do not split evenly (every rank must update on as many
    samples as the others)."""
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"rank {rank} is outside a world of {world}")
    if n_prompts % world:
        raise ValueError(f"trainer.prompts_per_step={n_prompts} cannot be split evenly over {world} ranks for "
                         f"colocated rollout; use a multiple of {world} or trainer.rollout_placement=driver")
    per = n_prompts // world
    return range(rank * per, (rank + 1) * per)


def merge_shards(parts: list[StepData]) -> StepData:
    """Join the ranks' shards (in rank order) into the whole step.

    Group ids are renumbered so that group g of rank r follows every group of ranks < r. Rollout
    and reward times are the slowest rank's (the ranks work in parallel); tokens add up.
    """
    if not parts:
        raise ValueError("no shards to merge")
    group_ids, offset = [], 0
    for part in parts:
        group_ids.append(part.group_ids.long() + offset)
        offset += len(part.record_idx)
    per_rank = [p.rollout_tokens / max(p.rollout_seconds, 1e-9) for p in parts]
    return StepData(
        prompt_ids=[ids for p in parts for ids in p.prompt_ids],
        completion_ids=[ids for p in parts for ids in p.completion_ids],
        texts=[t for p in parts for t in p.texts],
        group_ids=torch.cat(group_ids),
        finish_reasons=[f for p in parts for f in p.finish_reasons],
        rewards=torch.cat([p.rewards for p in parts], dim=0),
        record_idx=[i for p in parts for i in p.record_idx],
        rollout_seconds=max(p.rollout_seconds for p in parts),
        reward_seconds=max(p.reward_seconds for p in parts),
        rollout_tokens=sum(p.rollout_tokens for p in parts),
        rank_rollout_tokens_per_s=per_rank)


def rollout_tensor_parallel(rollout_cfg) -> int:
    """Ranks per rollout engine under colocated rollout: vLLM's ``tensor_parallel_size``, else 1."""
    if str(rollout_cfg.get("engine", "vllm")) != "vllm":
        return 1
    return int(rollout_cfg.get("tensor_parallel_size", 1) or 1)


def rank_seed(step_seed: int | None, world: int, rank: int) -> int | None:
    """The sampling seed of ``rank``'s shard: distinct per rank, and the step seed itself on one rank."""
    return None if step_seed is None else step_seed * world + rank
