"""The RL trainer: rollout -> rewards -> (SAW) advantages -> PPO-clip update -> weight sync.

One step (DESIGN.md section 3), on every rank of a DeepSpeed data-parallel group:

1. rank 0 takes the next ``prompts_per_step`` prompts and generates ``n`` completions each with
   the rollout engine (vLLM by default); samples are broadcast to all ranks;
2. the task's rewards score them: R Tensor[N, K] (rank 0, broadcast);
3. ``compute_advantages`` applies the configured estimator and weighting: A Tensor[N];
4. each rank takes its share of the N samples and runs ``ppo_epochs`` passes of
   ``mini_batches`` optimizer steps, each accumulated over micro-batches (DeepSpeed engine);
5. the new weights are pushed to the rollout engine (gathered under ZeRO-3);
6. metrics go to metrics.jsonl / the console / W&B; checkpoints every ``save_every`` steps.

Old-policy logprobs are recomputed by the trainer on the sampled tokens. With one PPO epoch and
one mini-batch the policy has not moved when the loss is evaluated, so old = current (detached)
and the extra no-grad pass is skipped: the ratio is exactly 1, as in verl's on-policy path.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from saw import distributed as dist_utils
from saw.advantages import compute_advantages
from saw.weighting import WEIGHTINGS
from saw.batching import TokenBatch, build_token_batch, response_logprobs
from saw.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from saw.metrics import MetricsWriter, reward_stats, tensor_stats
from saw.policy import autocast_dtype, build_policy, current_grad_norm, grad_norm, named_weights_for_sync
from saw.policy_loss import PolicyLossConfig, policy_loss
from saw.tracking import Tracker

log = logging.getLogger(__name__)


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


@dataclass
class StepData:
    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]
    texts: list[str]
    group_ids: torch.Tensor  # [N]
    finish_reasons: list[str]
    rewards: torch.Tensor  # [N, K]
    record_idx: list[int]  # per prompt
    rollout_seconds: float
    reward_seconds: float
    rollout_tokens: int


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class RLTrainer:
    """Owns the policy engine, the rollout engine (rank 0), the task and its rewards."""

    def __init__(self, cfg: DictConfig, run_dir: str | os.PathLike, model_path: str):
        from rewards import build_rewards
        from saw.tasks import build_task

        self.cfg = cfg
        self.t = cfg.trainer
        self.run_dir = Path(run_dir)
        self.model_path = str(model_path)
        self.rank, self.world = dist_utils.init_distributed(self.t.get("dist_backend"))
        seed_everything(int(cfg.seed) + self.rank)
        torch.set_num_threads(int(self.t.get("torch_threads") or os.cpu_count() or 1))

        self.task = build_task(cfg.task)
        specs = self.task.reward_specs
        self.rewards = build_rewards(OmegaConf.to_container(specs, resolve=True) if OmegaConf.is_config(specs)
                                     else specs)
        self.reward_names = [r.name for r in self.rewards]
        self.reward_min = torch.tensor([r.min for r in self.rewards], dtype=torch.float64)
        self.sampler = PromptSampler(len(self.task.train), int(cfg.seed))

        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

        n_total = int(self.t.prompts_per_step) * int(cfg.sampling.n)
        local = n_total // self.world
        self.mini_size = local // int(self.t.mini_batches)
        self.micro = min(int(self.t.micro_batch_size), self.mini_size)
        self.grad_accum = math.ceil(self.mini_size / self.micro)
        opt_steps = int(self.t.total_steps) * int(self.t.ppo_epochs) * int(self.t.mini_batches)
        self.engine = build_policy(self.model_path, self.t, micro_batch_size=self.micro,
                                   grad_accum=self.grad_accum, world_size=self.world,
                                   total_optimizer_steps=opt_steps,
                                   trust_remote_code=bool(cfg.model.get("trust_remote_code", False)))
        self.autocast = autocast_dtype(self.t.precision)
        self.ref_model = None
        if float(self.t.kl_coef) > 0 and self.t.get("use_reference", True):
            from saw.policy import load_causal_lm

            self.ref_model = load_causal_lm(self.model_path, precision=self.t.precision).eval()
            for p in self.ref_model.parameters():
                p.requires_grad_(False)
        self.loss_cfg = PolicyLossConfig(
            clip_ratio_low=float(self.t.clip_ratio_low),
            clip_ratio_high=None if self.t.clip_ratio_high is None else float(self.t.clip_ratio_high),
            loss_agg_mode=str(self.t.loss_agg_mode), kl_coef=float(self.t.kl_coef),
            kl_estimator=str(self.t.kl_estimator), entropy_coef=float(self.t.entropy_coef))

        self.max_prompt_length = int(self.t.get("max_prompt_length") or cfg.task.get("max_prompt_length") or 1024)
        self.rollout = None
        if self.rank == 0:
            from rollout import build_engine

            self.rollout = build_engine(cfg.rollout, self.model_path)

        self.step = 0
        self.data_position = 0
        k = len(self.rewards)
        self.grad_weights = torch.full((k,), 1.0 / k, dtype=torch.float64)  # "gradient" weighting state
        self._last_influence = None
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.ckpt_root = self.run_dir / "checkpoints"
        resume_step = self._maybe_resume()
        self.writer = MetricsWriter(self.metrics_path, resume_step=resume_step) if self.rank == 0 else None
        run_name = str(cfg.get("run_name", self.run_dir.name))
        self.tracker = Tracker(cfg.get("logger"), run_dir=str(self.run_dir), run_name=run_name,
                               config=OmegaConf.to_container(cfg, resolve=True), rank=self.rank)
        if resume_step is not None:
            self.sync_weights()

    # ------------------------------------------------------------------ resume
    def _maybe_resume(self) -> int | None:
        mode = str(self.t.resume)
        if mode in ("never", "false", "False", "none"):
            return None
        ckpt = latest_checkpoint(self.ckpt_root) if mode == "auto" else Path(mode)
        if ckpt is None:
            return None
        if not Path(ckpt).exists():
            raise FileNotFoundError(f"trainer.resume={mode}: no checkpoint at {ckpt}")
        state = load_checkpoint(self.engine, ckpt, rank=self.rank)
        self.step, self.data_position = int(state["step"]), int(state["data_position"])
        if state.get("gradient_weights") is not None:
            self.grad_weights = torch.tensor(state["gradient_weights"], dtype=torch.float64)
        log.info("resumed from %s at step %d", ckpt, self.step)
        return self.step

    # ------------------------------------------------------------------ phases
    def _encode(self, idx: list[int], split: list[dict]) -> list[list[int]]:
        out = []
        for i in idx:
            ids, _ = self.task.encode_prompt(self.tokenizer, split[i], self.max_prompt_length)
            out.append(ids)
        return out

    def _sampling(self, greedy: bool = False, n: int | None = None, seed: int | None = None):
        from rollout.base import SamplingConfig

        s = self.cfg.sampling
        return SamplingConfig(n=int(n if n is not None else s.n), temperature=0.0 if greedy else float(s.temperature),
                              top_p=1.0 if greedy else float(s.top_p), top_k=-1 if greedy else int(s.top_k),
                              max_new_tokens=int(s.max_new_tokens), stop=list(s.get("stop") or []), seed=seed)

    def score(self, texts: list[str], records: list[dict]) -> torch.Tensor:
        cols = [torch.tensor(r(texts, records), dtype=torch.float64) for r in self.rewards]
        return torch.stack(cols, dim=1)

    def collect(self) -> StepData:
        """Rollout + rewards on rank 0, broadcast to every rank."""
        payload = None
        if self.rank == 0:
            n_prompts = int(self.t.prompts_per_step)
            idx = self.sampler.take(self.data_position, n_prompts)
            prompt_ids = self._encode(idx, self.task.train)
            # a seed per step (not per engine call) keeps a resumed run on the same samples
            seed = int(self.cfg.seed) * 7919 + self.step if self.t.get("seed_per_step", True) else None
            batch = self.rollout.generate(prompt_ids, self._sampling(seed=seed))
            records = [self.task.train[idx[s.group_id]] for s in batch.samples]
            t0 = time.perf_counter()
            rewards = self.score(batch.texts, records)
            t_rew = time.perf_counter() - t0
            payload = StepData(
                prompt_ids=[s.prompt_ids for s in batch.samples],
                completion_ids=[s.completion_ids for s in batch.samples],
                texts=batch.texts, group_ids=batch.group_ids,
                finish_reasons=[s.finish_reason for s in batch.samples], rewards=rewards,
                record_idx=idx, rollout_seconds=batch.seconds, reward_seconds=t_rew,
                rollout_tokens=batch.completion_tokens)
        return dist_utils.broadcast_object(payload)

    def advantages(self, data: StepData) -> tuple[torch.Tensor, dict]:
        a = self.cfg.algorithm
        lengths = torch.tensor([len(c) for c in data.completion_ids], dtype=torch.float64)
        weights = None if a.get("weights") is None else list(a.weights)
        state = None
        if WEIGHTINGS.meta(str(a.weighting)).get("stateful"):
            self._gradient_weighting_step(data)
            state = {"weights": self.grad_weights}
        return compute_advantages(
            data.rewards, data.group_ids, estimator=str(a.estimator), weighting=str(a.weighting),
            weights=weights, reward_min=self.reward_min, delta=float(a.delta), eps=float(a.eps),
            whiten=a.get("whiten"), token_counts=lengths, weighting_state=state)

    def _local_batch(self, data: StepData) -> tuple[torch.Tensor, TokenBatch]:
        """This rank's share of the step's samples (indices into the batch, padded tokens)."""
        n = len(data.completion_ids)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(int(self.cfg.seed) + self.step))
        mine = order[self.rank::self.world]
        batch = build_token_batch([data.prompt_ids[i] for i in mine], [data.completion_ids[i] for i in mine],
                                  self.tokenizer.pad_token_id)
        return mine, batch

    def _gradient_weighting_step(self, data: StepData) -> None:
        """Lu et al.'s mirror-descent update of the reward weights (saw/gradient_weighting.py)."""
        from saw.advantages import group_index_of, group_normalise
        from saw.gradient_weighting import influence_from_grads, mirror_descent_step, per_objective_gradients

        gcfg = self.cfg.algorithm.get("gradient") or {}
        index, g = group_index_of(data.group_ids)
        per_reward = group_normalise(data.rewards.double(), index, g, eps=float(self.cfg.algorithm.eps))  # [N, K]
        mine, batch = self._local_batch(data)
        adv_k = per_reward[mine].float()
        k = adv_k.shape[1]
        n_tok = max(dist_utils.all_reduce_mean(float(batch.response_mask.sum())), 1.0)
        module = self.engine.module
        params = [p for p in module.parameters() if p.requires_grad]
        plain = PolicyLossConfig(loss_agg_mode=self.loss_cfg.loss_agg_mode)

        def micro_losses():
            for s0 in range(0, len(batch), self.micro):
                sl = slice(s0, s0 + self.micro)
                mb = batch.slice(sl)

                def make(mb=mb, sl=sl):
                    lp, _ = response_logprobs(module, mb, temperature=float(self.cfg.sampling.temperature) or 1.0,
                                              autocast_dtype=self.autocast)
                    norm = n_tok if plain.loss_agg_mode == "token-mean" else float(len(batch))
                    return [policy_loss(lp, lp.detach(), adv_k[sl, j], mb.response_mask, plain, normalizer=norm,
                                        max_response_length=int(self.cfg.sampling.max_new_tokens))[0]
                            for j in range(k)]

                yield make

        def reduce(t):
            if self.world > 1:
                torch.distributed.all_reduce(t)
                t /= self.world
            return t

        grads = per_objective_gradients(params, micro_losses(), k, all_reduce=reduce)
        influence = influence_from_grads(grads)
        eta = float(gcfg.get("eta") or self.engine.get_lr()[0])
        self.grad_weights = mirror_descent_step(self.grad_weights, influence, eta, float(gcfg.get("lam", 1.0)))
        self._last_influence = influence

    def _forward(self, mb: TokenBatch, with_entropy: bool):
        return response_logprobs(self.engine, mb, temperature=float(self.cfg.sampling.temperature) or 1.0,
                                 with_entropy=with_entropy, autocast_dtype=self.autocast)

    @torch.no_grad()
    def _logprobs_no_grad(self, model, batch: TokenBatch) -> torch.Tensor:
        out = torch.zeros_like(batch.response_mask)
        for s in range(0, len(batch), self.micro):
            mb = batch.slice(slice(s, s + self.micro))
            lp, _ = response_logprobs(model, mb, temperature=float(self.cfg.sampling.temperature) or 1.0,
                                      autocast_dtype=self.autocast)
            out[s: s + len(mb), : lp.shape[1]] = lp
        return out

    def update(self, data: StepData, adv: torch.Tensor) -> dict[str, float]:
        """PPO epochs x mini-batches x micro-batches on this rank's share of the samples."""
        mine, batch = self._local_batch(data)
        my_adv = adv[mine].float()
        on_policy = int(self.t.ppo_epochs) == 1 and int(self.t.mini_batches) == 1
        old_lp = None if on_policy else self._logprobs_no_grad(self.engine.module, batch)
        ref_lp = self._logprobs_no_grad(self.ref_model, batch) if self.ref_model is not None else None
        mode = self.loss_cfg.loss_agg_mode
        sums: dict[str, float] = {}
        counts: dict[str, float] = {}
        norms = []
        self.engine.train()
        for _epoch in range(int(self.t.ppo_epochs)):
            for m0 in range(0, len(batch), self.mini_size):
                mini = slice(m0, m0 + self.mini_size)
                mini_tokens = float(batch.response_mask[mini].sum())
                # DeepSpeed averages gradients over ranks, so each rank normalises by the global
                # count divided by the world size (= the mean of the per-rank counts)
                if mode == "token-mean":
                    norm = max(dist_utils.all_reduce_mean(mini_tokens), 1.0)
                else:
                    norm = float(min(self.mini_size, len(batch) - m0))
                for s in range(m0, min(m0 + self.mini_size, len(batch)), self.micro):
                    sl = slice(s, min(s + self.micro, m0 + self.mini_size))
                    mb = batch.slice(sl)
                    lp, ent = self._forward(mb, with_entropy=True)
                    t_mb = lp.shape[1]
                    old = lp.detach() if old_lp is None else old_lp[sl, :t_mb]
                    ref = None if ref_lp is None else ref_lp[sl, :t_mb]
                    loss, info = policy_loss(lp, old, my_adv[sl], mb.response_mask, self.loss_cfg,
                                             ref_logprobs=ref, entropy=ent, normalizer=norm,
                                             max_response_length=int(self.cfg.sampling.max_new_tokens))
                    self.engine.backward(loss, scale_wrt_gas=False)
                    if self.engine.is_gradient_accumulation_boundary() and self.engine.zero_optimization_stage() == 0:
                        norms.append(current_grad_norm(self.engine.module))
                    self.engine.step()
                    w = float(mb.response_mask.sum())
                    for k, v in info.items():
                        sums[k] = sums.get(k, 0.0) + float(v) * w
                        counts[k] = counts.get(k, 0.0) + w
                if self.engine.zero_optimization_stage() > 0:
                    norms.append(grad_norm(self.engine))
        out = {f"actor/{k}": dist_utils.all_reduce_mean(sums[k] / max(counts[k], 1.0)) for k in sums}
        out["actor/grad_norm"] = float(np.nanmean(norms)) if norms else float("nan")
        out["actor/lr"] = float(self.engine.get_lr()[0])
        return out

    def sync_weights(self) -> float:
        """Push the policy's weights to the rollout engine; returns seconds."""
        t0 = time.perf_counter()
        weights = named_weights_for_sync(self.engine)
        if self.rank == 0:
            self.rollout.update_weights(weights)
        else:  # under ZeRO-3 the gather is collective: every rank walks the parameters
            for _ in weights:
                pass
        dist_utils.barrier()
        return time.perf_counter() - t0

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Greedy generation on the validation split; mean of every reward."""
        if self.rank != 0 or not self.task.validation:
            return {}
        recs = self.task.validation[: int(self.t.val_records)]
        ids = self._encode(range(len(recs)), recs)
        batch = self.rollout.generate(ids, self._sampling(greedy=True, n=1))
        r = self.score(batch.texts, [recs[s.group_id] for s in batch.samples])
        out = {f"val/{name}": float(torch.nanmean(r[:, j])) for j, name in enumerate(self.reward_names)}
        out["val/response_length"] = float(np.mean([len(s.completion_ids) for s in batch.samples]))
        return out

    # ------------------------------------------------------------------ loop
    def train_step(self) -> dict[str, Any]:
        t_step = time.perf_counter()
        data = self.collect()
        t0 = time.perf_counter()
        adv, info = self.advantages(data)
        t_adv = time.perf_counter() - t0
        t0 = time.perf_counter()
        upd = self.update(data, adv)
        t_upd = time.perf_counter() - t0
        t_sync = self.sync_weights()
        self.step += 1
        self.data_position += int(self.t.prompts_per_step)
        t_total = time.perf_counter() - t_step
        lengths = torch.tensor([len(c) for c in data.completion_ids], dtype=torch.float64)
        total_tokens = sum(len(p) + len(c) for p, c in zip(data.prompt_ids, data.completion_ids))
        m: dict[str, Any] = {"step": self.step}
        m.update(reward_stats(data.rewards, data.group_ids, self.reward_names, info, self.reward_min))
        if "scalar_reward" in info:
            m["reward/total/mean"] = float(info["scalar_reward"].double().mean())
        m.update(tensor_stats("adv", adv))
        if self._last_influence is not None:
            m.update({f"reward/{n}/influence": float(v) for n, v in zip(self.reward_names, self._last_influence)})
        m["response/length_mean"] = float(lengths.mean())
        m["response/length_max"] = float(lengths.max())
        m["response/clip_frac"] = float(np.mean([f == "length" for f in data.finish_reasons]))
        m.update(upd)
        m["perf/tokens_per_s"] = total_tokens / t_total
        m["perf/rollout_tokens_per_s"] = data.rollout_tokens / max(data.rollout_seconds, 1e-9)
        m.update({"time/rollout": data.rollout_seconds, "time/rewards": data.reward_seconds,
                  "time/advantages": t_adv, "time/update": t_upd, "time/sync": t_sync, "time/step": t_total})
        if self.world > 1 and self.t.get("check_sync", False):
            m["dist/param_sum_spread"] = self._param_spread()
        self._last_data = data
        return m

    @torch.no_grad()
    def _param_spread(self) -> float:
        """max - min over ranks of the sum of all parameters (0 when the ranks are in sync)."""
        total = torch.tensor([sum(float(p.double().sum()) for p in self.engine.module.parameters())],
                             dtype=torch.float64)
        gathered = [torch.zeros_like(total) for _ in range(self.world)]
        torch.distributed.all_gather(gathered, total)
        vals = torch.cat(gathered)
        return float(vals.max() - vals.min())

    def _sample_rows(self, data: StepData, k: int = 4) -> list[list[Any]]:
        rows = []
        for i in range(min(k, len(data.texts))):
            rows.append([self.step, int(data.group_ids[i]), data.texts[i][:2000]]
                        + [float(x) for x in data.rewards[i]])
        return rows

    def save(self) -> None:
        state = {"step": self.step, "data_position": self.data_position, "seed": int(self.cfg.seed),
                 "algorithm": str(self.cfg.algorithm.name), "gradient_weights": self.grad_weights.tolist()}
        save_checkpoint(self.engine, self.ckpt_root, self.step, state, rank=self.rank,
                        barrier=dist_utils.barrier, keep=int(self.t.keep_checkpoints))

    def fit(self) -> list[dict[str, Any]]:
        """Run until ``total_steps``; returns this process's metric records."""
        from tqdm.auto import tqdm

        total = int(self.t.total_steps)
        history = []
        bar = tqdm(total=total, initial=self.step, desc=f"{self.cfg.algorithm.name}", disable=self.rank != 0,
                   dynamic_ncols=True)
        val_every, save_every = int(self.t.val_every), int(self.t.save_every)
        stop_after = self.t.get("stop_after_steps")  # for tests: simulate an interruption
        try:
            while self.step < total:
                m = self.train_step()
                if val_every > 0 and (self.step % val_every == 0 or self.step == total):
                    m.update(self.validate())
                if self.rank == 0:
                    self.writer.write(m)
                    self.tracker.log(m, self.step)
                    every = int(self.cfg.logger.get("sample_table_every", 0)) if self.cfg.get("logger") else 0
                    if every and self.step % every == 0:
                        self.tracker.log_samples(["step", "group", "completion"] + self.reward_names,
                                                 self._sample_rows(self._last_data), self.step)
                    bar.update(1)
                    bar.set_postfix({n[:12]: f"{m.get(f'reward/{n}/mean', float('nan')):.3f}" for n in self.reward_names}
                                    | {"s/step": f"{m['time/step']:.1f}"})
                history.append(m)
                if save_every > 0 and (self.step % save_every == 0 or self.step == total):
                    self.save()
                if stop_after is not None and self.step >= int(stop_after):
                    break
        finally:
            bar.close()
        return history

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.tracker.finish()
        if self.rollout is not None:
            self.rollout.close()
