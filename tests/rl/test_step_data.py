"""Colocated rollout's shard and merge (saw/rl/step_data.py), and a real 2-rank gloo world in
which each rank scores its own shard: the gathered step gives the advantages and batch
statistics of one driver scoring the whole step, bit for bit."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from saw.algo.advantages import compute_advantages
from saw.algo.weighting import build_weighting
from saw.rl.metrics import reward_stats
from saw.rl.step_data import StepData, merge_shards, prompt_shard, rank_seed

ROOT = Path(__file__).resolve().parents[2]


def make_step(n_prompts: int, n: int, k: int, seed: int) -> StepData:
    """A synthetic step: n samples per prompt, K rewards on different scales (one binary)."""
    gen = torch.Generator().manual_seed(seed)
    rewards = torch.rand(n_prompts * n, k, generator=gen, dtype=torch.float64)
    rewards[:, 0] = (rewards[:, 0] > 0.3).double()  # a binary reward, as format/correctness
    lengths = torch.randint(1, 9, (n_prompts * n,), generator=gen)
    completions = [list(range(int(m))) for m in lengths]
    return StepData(prompt_ids=[[g] * 3 for g in range(n_prompts) for _ in range(n)], completion_ids=completions,
                    texts=[f"t{i}" for i in range(n_prompts * n)],
                    group_ids=torch.arange(n_prompts).repeat_interleave(n),
                    finish_reasons=["stop"] * (n_prompts * n), rewards=rewards, record_idx=list(range(100, 100 + n_prompts)),
                    rollout_seconds=1.0, reward_seconds=0.1, rollout_tokens=int(lengths.sum()))


def shard_of(step: StepData, world: int, rank: int, n: int) -> StepData:
    """What rank ``rank`` holds after generating its prompts: local group ids 0..G/world-1."""
    prompts = prompt_shard(len(step.record_idx), world, rank)
    rows = slice(prompts.start * n, prompts.stop * n)
    return StepData(prompt_ids=step.prompt_ids[rows], completion_ids=step.completion_ids[rows], texts=step.texts[rows],
                    group_ids=step.group_ids[rows] - prompts.start, finish_reasons=step.finish_reasons[rows],
                    rewards=step.rewards[rows], record_idx=step.record_idx[prompts.start: prompts.stop],
                    rollout_seconds=1.0 + rank, reward_seconds=0.1 * (rank + 1),
                    rollout_tokens=sum(len(c) for c in step.completion_ids[rows]))


def step_results(step: StepData, algorithm: str) -> dict[str, float | list[float]]:
    """Advantages and the logged reward statistics of a whole step, as the trainer computes them."""
    estimator, weighting = {"grpo_saw": ("grpo", "saw"), "gdpo_saw": ("gdpo", "saw"), "gdpo": ("gdpo", "static")}[algorithm]
    k = step.rewards.shape[1]
    w = build_weighting(weighting, k)
    adv, info = compute_advantages(step.rewards, step.group_ids, estimator=estimator, weighting=w,
                                   reward_min=torch.zeros(k, dtype=torch.float64),
                                   reward_max=torch.ones(k, dtype=torch.float64),
                                   token_counts=torch.tensor([len(c) for c in step.completion_ids], dtype=torch.float64))
    stats = reward_stats(step.rewards, step.group_ids, [f"r{j}" for j in range(k)], info,
                         torch.zeros(k, dtype=torch.float64))
    return {"adv": adv.double().tolist(), **{key: float(v) for key, v in stats.items()}}


@settings(max_examples=50, deadline=None)
@given(world=st.integers(1, 8), per_rank=st.integers(1, 6))
def test_prompt_shards_partition_the_step_in_order(world, per_rank):
    n_prompts = world * per_rank
    shards = [prompt_shard(n_prompts, world, r) for r in range(world)]
    assert [i for s in shards for i in s] == list(range(n_prompts))
    assert all(len(s) == per_rank for s in shards)


def test_uneven_or_bad_shards_are_refused():
    with pytest.raises(ValueError, match="prompts_per_step=5 cannot be split evenly over 2 ranks"):
        prompt_shard(5, 2, 0)
    with pytest.raises(ValueError, match="outside a world"):
        prompt_shard(4, 2, 2)


@pytest.mark.parametrize("world", [1, 2, 4])
def test_merged_shards_equal_the_whole_step(world):
    n = 4
    step = make_step(8, n, 3, seed=world)
    merged = merge_shards([shard_of(step, world, r, n) for r in range(world)])
    assert torch.equal(merged.group_ids, step.group_ids)
    assert torch.equal(merged.rewards, step.rewards)
    assert merged.completion_ids == step.completion_ids and merged.texts == step.texts
    assert merged.record_idx == step.record_idx
    assert merged.rollout_tokens == step.rollout_tokens
    assert merged.rollout_seconds == 1.0 + (world - 1)  # the slowest rank
    assert len(merged.rank_rollout_tokens_per_s) == world
    assert sum(t * (1.0 + r) for r, t in enumerate(merged.rank_rollout_tokens_per_s)) == pytest.approx(step.rollout_tokens)


def test_rank_seeds_are_distinct_and_the_step_seed_on_one_rank():
    assert rank_seed(17, 1, 0) == 17 and rank_seed(None, 4, 2) is None
    seeds = {rank_seed(s, 4, r) for s in range(50) for r in range(4)}
    assert len(seeds) == 200


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


RANK_SCRIPT = """
import json, sys
import torch.distributed as dist
sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
from test_step_data import make_step, shard_of, step_results
from saw.rl import distributed as dist_utils
from saw.rl.step_data import merge_shards
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
full = make_step(8, 4, 3, seed=11)                  # only this rank's shard is used below
local = shard_of(full, world, rank, 4)
merged = merge_shards(dist_utils.all_gather_object(local))
out = {{alg: step_results(merged, alg) for alg in ("grpo_saw", "gdpo_saw", "gdpo")}}
json.dump(out, open({out!r} + f"/rank{{rank}}.json", "w"))
dist.destroy_process_group()
"""


@pytest.mark.timeout(300)
def test_two_ranks_gather_the_batch_statistics_of_one_driver(tmp_path):
    """Two gloo processes, each scoring half of the prompts: after the gather both compute the
    advantages and reward statistics of a single process that holds the whole step, exactly."""
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT.format(root=str(ROOT), tests=str(Path(__file__).parent), out=str(tmp_path)))
    port = str(_free_port())
    procs = []
    for rank in range(2):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=port, OMP_NUM_THREADS="1")
        procs.append(subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    for proc in procs:
        out, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0, out
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    driver = {alg: step_results(make_step(8, 4, 3, seed=11), alg) for alg in ("grpo_saw", "gdpo_saw", "gdpo")}
    for alg, expected in driver.items():
        for got in ranks:
            assert got[alg].keys() == expected.keys()
            for key, val in expected.items():
                assert got[alg][key] == val, (alg, key)  # the same numbers to the last bit
    # the whole step's statistics differ from those of either half alone (the gather matters)
    half = step_results(shard_of(make_step(8, 4, 3, seed=11), 2, 0, 4), "grpo_saw")
    assert half["adv"] != driver["grpo_saw"]["adv"][: len(half["adv"])]
