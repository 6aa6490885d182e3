"""The RL trainer: rollout -> rewards -> (SAW) advantages -> PPO-clip update -> weight sync.

One step (DESIGN.md section 3), on every rank of a DeepSpeed data-parallel group:

1. the next ``prompts_per_step`` prompts get ``n`` completions each from the rollout engine (vLLM
   by default): on rank 0, broadcast to all ranks (``trainer.rollout_placement=driver``), or on
   every rank for its own shard of the prompts, then gathered (``colocated``, saw/rl/step_data.py);
2. the task's rewards score them where they were generated: R Tensor[N, K] for the whole step;
3. ``compute_advantages`` applies the configured estimator and weighting to the whole step on
   every rank: A Tensor[N];
4. each rank takes its share of the N samples (colocated: the ones it generated) and runs
   ``ppo_epochs`` passes of ``mini_batches`` optimizer steps, each accumulated over micro-batches
   (DeepSpeed engine);
5. the new weights are pushed to the rollout engine(s) (gathered under ZeRO-3);
6. metrics go to metrics.jsonl / the console / W&B; checkpoints every ``save_every`` steps.

Old-policy logprobs are recomputed by the trainer on the sampled tokens. With one PPO epoch and
one mini-batch the policy has not moved when the loss is evaluated, so old = current (detached)
and the extra no-grad pass is skipped: the ratio is exactly 1, as in verl's on-policy path.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from tqdm.auto import tqdm
from transformers import AutoTokenizer

from rewards import build_rewards
from rollout import build_engine
from rollout.base import SamplingConfig
from saw.algo.advantages import compute_advantages
from saw.algo.gradient import per_objective_gradients
from saw.algo.policy_loss import PolicyLossConfig, kl_penalty, masked_sum, policy_loss
from saw.algo.weighting import build_weighting
from saw.core.config import to_plain, to_plain_value
from saw.rl import distributed as dist_utils
from saw.rl.batches import PromptSampler, micro_layout, prompt_limit, seed_everything
from saw.rl.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from saw.rl.engine import (autocast_dtype, build_policy, current_grad_norm, grad_norm, load_causal_lm,
                           named_weights_for_sync, select_parameters)
from saw.rl.logprobs import build_token_batch, response_logprobs, shared_prefix_logprobs
from saw.rl.step_data import StepData, merge_shards, prompt_shard, rank_seed, rollout_tensor_parallel
from saw.core.io import MetricsWriter
from saw.rl.metrics import reward_stats, tensor_stats
from saw.rl.tracking import Tracker
from saw.tasks import build_task

log = logging.getLogger(__name__)


class _TrainerProbe:
    """What a stateful weighting may ask of the trainer during one step (saw.algo.weighting.WeightingProbe)."""

    def __init__(self, trainer: "RLTrainer", data: StepData):
        self._trainer, self._data = trainer, data
        self.rewards = data.rewards.double()
        self.group_ids = data.group_ids
        self.lr = float(trainer.engine.get_lr()[0])

    def objective_gradients(self, advantages: torch.Tensor, *, layer_span=None) -> torch.Tensor:
        return self._trainer.objective_gradients(self._data, advantages, layer_span)


class RLTrainer:
    """Owns the policy engine, the rollout engine (rank 0, or every rank when colocated), the task
    and its rewards."""

    def __init__(self, cfg: DictConfig, run_dir: str | os.PathLike, model_path: str):
        self.cfg = cfg
        self.tcfg = cfg.trainer  # the trainer config group
        self.run_dir = Path(run_dir)
        self.model_path = str(model_path)
        self.rank, self.world = dist_utils.init_distributed(self.tcfg.get("dist_backend"))
        seed_everything(int(cfg.seed) + self.rank)
        torch.set_num_threads(int(self.tcfg.get("torch_threads") or os.cpu_count() or 1))

        self.task = build_task(cfg.task)
        specs = self.task.reward_specs
        self.rewards = build_rewards(to_plain_value(specs))
        self.reward_names = [r.name for r in self.rewards]
        self.task.check_records(self.rewards)  # drops unscorable records under task.skip_bad_records
        self.reward_min = torch.tensor([r.min for r in self.rewards], dtype=torch.float64)
        self.reward_max = torch.tensor([r.max for r in self.rewards], dtype=torch.float64)

        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.max_prompt_length = prompt_limit(cfg)
        self.task.filter_for_training(self.tokenizer, self.max_prompt_length)
        self.sampler = PromptSampler(len(self.task.train), int(cfg.seed))

        self.n = int(cfg.sampling.n)
        self.shared_prefix = bool(self.tcfg.get("shared_prefix", False))
        self.micro_per_mini, self.micro = micro_layout(
            int(self.tcfg.prompts_per_step), self.n, self.world, int(self.tcfg.mini_batches),
            int(self.tcfg.micro_batch_size), self.shared_prefix)
        self.grad_accum = self.micro_per_mini
        opt_steps = int(self.tcfg.total_steps) * int(self.tcfg.ppo_epochs) * int(self.tcfg.mini_batches)
        self.engine = build_policy(self.model_path, self.tcfg, micro_batch_size=self.micro,
                                   grad_accum=self.grad_accum, world_size=self.world,
                                   total_optimizer_steps=opt_steps,
                                   trust_remote_code=bool(cfg.model.get("trust_remote_code", False)))
        self.autocast = autocast_dtype(self.tcfg.precision)
        self.kl = cfg.get("kl") or {}
        self.reward_kl_coef = float(self.kl.get("reward_coef") or 0.0)
        self.ref_model = None
        if float(self.kl.get("loss_coef") or 0.0) > 0 or self.reward_kl_coef > 0:
            self.ref_model = load_causal_lm(self.model_path, precision=self.tcfg.precision).eval().to(self.engine.device)
            for p in self.ref_model.parameters():
                p.requires_grad_(False)
        self.loss_cfg = PolicyLossConfig(
            clip_ratio_low=float(self.tcfg.clip_ratio_low),
            clip_ratio_high=None if self.tcfg.clip_ratio_high is None else float(self.tcfg.clip_ratio_high),
            dual_clip_c=None if self.tcfg.get("clip_ratio_c") is None else float(self.tcfg.clip_ratio_c),
            loss_agg_mode=str(cfg.algorithm.get("loss_agg_mode") or self.tcfg.loss_agg_mode),
            kl_coef=float(self.kl.get("loss_coef") or 0.0), kl_estimator=str(self.kl.get("loss_estimator", "k3")),
            entropy_coef=float(self.tcfg.entropy_coef))

        self.colocated = str(self.tcfg.get("rollout_placement", "driver")) == "colocated"
        # colocated: ranks of one tensor-parallel vLLM engine generate the same shard together
        self.rollout_tp = rollout_tensor_parallel(cfg.rollout)
        self.rollout = None
        if self.rank == 0 or self.colocated:
            self.rollout = build_engine(self._rollout_settings(), self.model_path)

        self.step = 0
        self.data_position = 0
        a = cfg.algorithm
        self.weighting = build_weighting(str(a.weighting), len(self.rewards),
                                         **to_plain(a.get(str(a.weighting)), allow_none=True))
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.ckpt_root = self.run_dir / "checkpoints"
        resume_step = self._maybe_resume()
        # truncated to the resumed checkpoint's step (empty without one): every step appears once
        self.writer = MetricsWriter(self.metrics_path, resume_step=resume_step or 0) if self.rank == 0 else None
        run_name = str(cfg.get("run_name", self.run_dir.name))
        self.tracker = Tracker(cfg.get("logger"), run_dir=str(self.run_dir), run_name=run_name,
                               config=OmegaConf.to_container(cfg, resolve=True), rank=self.rank)
        if resume_step is not None:
            self.sync_weights()

    def _rollout_settings(self) -> dict:
        """The rollout config, placed for this rank: with colocated rollout on several ranks the
        transformers engine runs on this rank's GPU, and vLLM joins the training world through its
        ``external_launcher`` backend (one engine per rank, tensor parallelism within groups of
        ``rollout.tensor_parallel_size`` ranks; TRL's colocate mode does the same)."""
        settings = dict(OmegaConf.to_container(self.cfg.rollout, resolve=True))
        if not (self.colocated and self.world > 1):
            return settings
        engine = str(settings.get("engine", "vllm"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if engine in ("hf", "transformers") and settings.get("device", "auto") == "auto" and torch.cuda.is_available():
            settings["device"] = f"cuda:{local_rank}"
        if engine == "vllm":
            settings["distributed_executor_backend"] = "external_launcher"
            settings["in_process"] = True
            tp = int(settings.get("tensor_parallel_size", 1))
            settings["seed"] = int(settings.get("seed", 0)) + self.rank // tp  # ranks of a TP group agree
        return settings

    # ------------------------------------------------------------------ resume
    def _maybe_resume(self) -> int | None:
        mode = str(self.tcfg.resume)
        if mode in ("never", "false", "False", "none"):
            return None
        ckpt = latest_checkpoint(self.ckpt_root) if mode in ("auto", "force") else Path(mode)
        if ckpt is None:
            return None
        if not Path(ckpt).exists():
            raise FileNotFoundError(f"trainer.resume={mode}: no checkpoint at {ckpt}")
        state = load_checkpoint(self.engine, ckpt, rank=self.rank)
        self.step, self.data_position = int(state["step"]), int(state["data_position"])
        self.weighting.load_state_dict(state.get("weighting") or {})
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
        s = self.cfg.sampling
        return SamplingConfig(n=int(n if n is not None else s.n), temperature=0.0 if greedy else float(s.temperature),
                              top_p=1.0 if greedy else float(s.top_p), top_k=-1 if greedy else int(s.top_k),
                              max_new_tokens=int(s.max_new_tokens), stop=list(s.get("stop") or []), seed=seed)

    def score(self, texts: list[str], records: list[dict]) -> torch.Tensor:
        cols = [torch.tensor(r(texts, records), dtype=torch.float64) for r in self.rewards]
        return torch.stack(cols, dim=1)

    def collect(self) -> StepData:
        """The step's samples and rewards, the same on every rank.

        driver: rank 0 generates and scores all prompts, then broadcasts; colocated: each rank
        generates and scores its shard of the prompts (saw/rl/step_data.py), then the shards are
        gathered in prompt order."""
        n_prompts = int(self.tcfg.prompts_per_step)
        idx = self.sampler.take(self.data_position, n_prompts)
        # a seed per step (not per engine call) keeps a resumed run on the same samples
        seed = int(self.cfg.seed) * 7919 + self.step if self.tcfg.get("seed_per_step", True) else None
        if self.colocated:
            engines, engine = self.world // self.rollout_tp, self.rank // self.rollout_tp
            mine = [idx[i] for i in prompt_shard(n_prompts, engines, engine)]
            local = self._generate_and_score(mine, rank_seed(seed, engines, engine))
            # every rank of a tensor-parallel group holds the same shard: keep one per engine
            return merge_shards(dist_utils.all_gather_object(local)[:: self.rollout_tp])
        return dist_utils.broadcast_object(self._generate_and_score(idx, seed) if self.rank == 0 else None)

    def _generate_and_score(self, idx: list[int], seed: int | None) -> StepData:
        """n completions of each training record in ``idx`` from this rank's engine, scored."""
        prompt_ids = self._encode(idx, self.task.train)
        batch = self.rollout.generate(prompt_ids, self._sampling(seed=seed))
        self.rollout.release_memory()  # vLLM sleep mode: the update gets the engine's GPU memory
        records = [self.task.train[idx[s.group_id]] for s in batch.samples]
        t0 = time.perf_counter()
        rewards = self.score(batch.texts, records)
        return StepData(
            prompt_ids=[s.prompt_ids for s in batch.samples],
            completion_ids=[s.completion_ids for s in batch.samples],
            texts=batch.texts, group_ids=batch.group_ids,
            finish_reasons=[s.finish_reason for s in batch.samples], rewards=rewards,
            record_idx=list(idx), rollout_seconds=batch.seconds, reward_seconds=time.perf_counter() - t0,
            rollout_tokens=batch.completion_tokens)

    def advantages(self, data: StepData) -> tuple[torch.Tensor, dict]:
        """Advance the weighting (stateful ones only do work), then the configured estimator."""
        a = self.cfg.algorithm
        diagnostics = self.weighting.update(_TrainerProbe(self, data))
        lengths = torch.tensor([len(c) for c in data.completion_ids], dtype=torch.float64)
        weights = None if a.get("weights") is None else list(a.weights)
        penalty = self.reward_kl_coef * self.sequence_kl(data) if self.reward_kl_coef > 0 else None
        adv, info = compute_advantages(
            data.rewards, data.group_ids, estimator=str(a.estimator), weighting=self.weighting,
            weights=weights, reward_min=self.reward_min, reward_max=self.reward_max, delta=float(a.delta), eps=float(a.eps),
            whiten=a.get("whiten"), token_counts=lengths, penalty=penalty)
        if penalty is not None:
            info["reward_kl_penalty"] = penalty
        return adv, {**info, **{f"weighting/{key}": val for key, val in diagnostics.items()}}

    @torch.no_grad()
    def sequence_kl(self, data: StepData) -> torch.Tensor:
        """sum_t KL_t(policy || reference) of every response, Tensor[N] (float64), with the
        ``kl.reward_estimator`` on the sampled tokens, before the update (verl's old_log_prob).
        Each rank scores its own micro-batches; a sum over ranks fills the whole vector."""
        micro_batches = self._local_micro_batches(data)
        policy = self._no_grad_logprobs(self.engine.module, data, micro_batches)
        ref = self._no_grad_logprobs(self.ref_model, data, micro_batches)
        out = torch.zeros(len(data.completion_ids), dtype=torch.float64)
        estimator = str(self.kl.get("reward_estimator", "k1"))
        for rows, lp, ref_lp in zip(micro_batches, policy, ref):
            t = min(lp.shape[1], ref_lp.shape[1])
            lengths = torch.tensor([len(data.completion_ids[int(r)]) for r in rows], device=lp.device)
            mask = (torch.arange(t, device=lp.device).unsqueeze(0) < lengths.unsqueeze(1)).to(lp.dtype)
            kl = masked_sum(kl_penalty(lp[:, :t].float(), ref_lp[:, :t].float(), estimator), mask, dim=-1)
            out[rows] = kl.double().cpu()
        if self.world > 1:
            torch.distributed.all_reduce(out)
        return out

    def _local_micro_batches(self, data: StepData) -> list[torch.Tensor]:
        """This rank's share of the step's samples, as micro-batches of sample indices.

        Samples are shuffled with a per-step seed (whole groups when ``shared_prefix``, so that a
        micro-batch holds complete groups) and dealt round-robin to the ranks; with colocated
        rollout each rank keeps the block of samples it generated, shuffled.
        """
        n_samples = len(data.completion_ids)
        gen = torch.Generator().manual_seed(int(self.cfg.seed) + self.step)
        if self.colocated and self.world > 1:
            n_groups = n_samples // self.n // self.world
            groups = torch.randperm(n_groups, generator=gen) + self.rank * n_groups
            if not self.shared_prefix:
                mine = (groups.unsqueeze(1) * self.n + torch.arange(self.n)).flatten()
                mine = mine[torch.randperm(len(mine), generator=gen)]
                return [mine[i: i + self.micro] for i in range(0, len(mine), self.micro)]
        elif self.shared_prefix:
            groups = torch.randperm(n_samples // self.n, generator=gen)[self.rank::self.world]
        if self.shared_prefix:
            per = max(1, self.micro // self.n)
            return [(groups[i: i + per].unsqueeze(1) * self.n + torch.arange(self.n)).flatten()
                    for i in range(0, len(groups), per)]
        mine = torch.randperm(n_samples, generator=gen)[self.rank::self.world]
        return [mine[i: i + self.micro] for i in range(0, len(mine), self.micro)]

    def _micro_logprobs(self, model, data: StepData, rows: torch.Tensor, with_entropy: bool):
        """(logprobs [b, T], entropy [b, T] or None, response_mask [b, T]) for sample indices ``rows``."""
        temperature = float(self.cfg.sampling.temperature) or 1.0
        if self.shared_prefix:
            prompts = [data.prompt_ids[int(r)] for r in rows[:: self.n]]
            return shared_prefix_logprobs(model, prompts, [data.completion_ids[int(r)] for r in rows], self.n,
                                          self.tokenizer.pad_token_id, temperature=temperature,
                                          with_entropy=with_entropy, autocast_dtype=self.autocast)
        mb = build_token_batch([data.prompt_ids[int(r)] for r in rows], [data.completion_ids[int(r)] for r in rows],
                               self.tokenizer.pad_token_id)
        lp, ent = response_logprobs(model, mb, temperature=temperature, with_entropy=with_entropy,
                                    autocast_dtype=self.autocast)
        return lp, ent, mb.response_mask.to(lp.device)

    @torch.no_grad()
    def _no_grad_logprobs(self, model, data: StepData, micro_batches: list[torch.Tensor]) -> list[torch.Tensor]:
        was_training = model.training
        model.eval()
        try:
            return [self._micro_logprobs(model, data, rows, with_entropy=False)[0] for rows in micro_batches]
        finally:
            model.train(was_training)

    def _normalizer(self, micro_batches: list[torch.Tensor], data: StepData) -> float:
        """Loss denominator of one mini-batch on this rank.

        DeepSpeed averages gradients over ranks, so each rank divides by the global count over
        the world size (the mean of the per-rank counts): tokens for token-mean, else responses.
        """
        if self.loss_cfg.loss_agg_mode == "token-mean":
            tokens = float(sum(len(data.completion_ids[int(r)]) for rows in micro_batches for r in rows))
            return max(dist_utils.all_reduce_mean(tokens), 1.0)
        return float(sum(len(rows) for rows in micro_batches))

    def objective_gradients(self, data: StepData, advantages: torch.Tensor,
                            layer_span: tuple[float, float] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(grads Tensor[K, P], full_norms Tensor[K]): flattened policy gradients of the surrogate
        of each advantage column advantages Tensor[N, K], over this step's micro-batches, averaged
        over ranks, restricted to the decoder layers in ``layer_span``; norms over all parameters.

        The loss is the update's (same aggregation and normaliser, KL and entropy terms as
        configured) evaluated on-policy; the optimizer's ``.grad`` buffers are left untouched.
        """
        micro_batches = self._local_micro_batches(data)
        adv_k = advantages.float()
        k = adv_k.shape[1]
        normalizer = self._normalizer(micro_batches, data)
        module = self.engine.module
        params = select_parameters(module, None)
        chosen = {id(p) for p in select_parameters(module, layer_span)}
        kl_loss = self.ref_model is not None and self.loss_cfg.kl_coef > 0
        ref_lps = self._no_grad_logprobs(self.ref_model, data, micro_batches) if kl_loss else None

        def micro_losses():
            for i, rows in enumerate(micro_batches):
                def make(rows=rows, i=i):
                    lp, ent, mask = self._micro_logprobs(module, data, rows, with_entropy=True)
                    ref = None if ref_lps is None else ref_lps[i][:, : lp.shape[1]]
                    return [policy_loss(lp, lp.detach(), adv_k[rows, j].to(lp.device), mask, self.loss_cfg, ref_logprobs=ref,
                                        entropy=ent, normalizer=normalizer,
                                        max_response_length=int(self.cfg.sampling.max_new_tokens))[0]
                            for j in range(k)]

                yield make

        def mean_over_ranks(t):
            if self.world > 1:
                torch.distributed.all_reduce(t)
                t /= self.world
            return t

        grads = per_objective_gradients(params, micro_losses(), k, all_reduce=mean_over_ranks)  # [K, P_all]
        full_norms = grads.double().norm(dim=1)
        if len(chosen) < len(params):
            keep = torch.cat([torch.full((p.numel(),), id(p) in chosen) for p in params])
            grads = grads[:, keep]
        return grads, full_norms

    def update(self, data: StepData, adv: torch.Tensor) -> dict[str, float]:
        """PPO epochs x mini-batches x micro-batches on this rank's share of the samples."""
        micro_batches = self._local_micro_batches(data)
        on_policy = int(self.tcfg.ppo_epochs) == 1 and int(self.tcfg.mini_batches) == 1
        module = self.engine.module
        old_lps = None if on_policy else self._no_grad_logprobs(module, data, micro_batches)
        kl_loss = self.ref_model is not None and self.loss_cfg.kl_coef > 0
        ref_lps = self._no_grad_logprobs(self.ref_model, data, micro_batches) if kl_loss else None
        sums: dict[str, float] = {}
        counts: dict[str, float] = {}
        norms = []
        adv = adv.float()
        self.engine.train()
        for _epoch in range(int(self.tcfg.ppo_epochs)):
            for m0 in range(0, len(micro_batches), self.micro_per_mini):
                mini = list(range(m0, min(m0 + self.micro_per_mini, len(micro_batches))))
                norm = self._normalizer([micro_batches[u] for u in mini], data)
                for u in mini:
                    rows = micro_batches[u]
                    lp, ent, mask = self._micro_logprobs(self.engine, data, rows, with_entropy=True)
                    t_u = lp.shape[1]
                    old = lp.detach() if old_lps is None else old_lps[u][:, :t_u]
                    ref = None if ref_lps is None else ref_lps[u][:, :t_u]
                    loss, info = policy_loss(lp, old, adv[rows].to(lp.device), mask, self.loss_cfg, ref_logprobs=ref, entropy=ent,
                                             normalizer=norm, max_response_length=int(self.cfg.sampling.max_new_tokens))
                    self.engine.backward(loss, scale_wrt_gas=False)
                    if self.engine.is_gradient_accumulation_boundary() and self.engine.zero_optimization_stage() == 0:
                        norms.append(current_grad_norm(module))
                    self.engine.step()
                    w = float(mask.sum())
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
        """Push the policy's weights to the rollout engine(s); returns seconds."""
        t0 = time.perf_counter()
        # in-process engines copy from the policy's own device; the vLLM bytes path moves to CPU itself
        weights = named_weights_for_sync(self.engine, copy_to_cpu=False)
        if self.rollout is not None:
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
        recs = self.task.validation[: int(self.tcfg.val_records)]
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
        self.data_position += int(self.tcfg.prompts_per_step)
        t_total = time.perf_counter() - t_step
        lengths = torch.tensor([len(c) for c in data.completion_ids], dtype=torch.float64)
        total_tokens = sum(len(p) + len(c) for p, c in zip(data.prompt_ids, data.completion_ids))
        m: dict[str, Any] = {"step": self.step}
        m.update(reward_stats(data.rewards, data.group_ids, self.reward_names, info, self.reward_min))
        if "scalar_reward" in info:
            m["reward/total/mean"] = float(info["scalar_reward"].double().mean())
        if "reward_kl_penalty" in info:  # kl.reward_coef * sum_t KL_t, subtracted from the scalar reward
            m["actor/reward_kl_penalty"] = float(info["reward_kl_penalty"].double().mean())
        m.update(tensor_stats("adv", adv))
        for key, val in info.items():  # per-reward diagnostics a weighting reported from its update
            if key.startswith("weighting/"):
                m.update({f"reward/{n}/{key.split('/', 1)[1]}": float(v) for n, v in zip(self.reward_names, val)})
        for r in self.rewards:
            m[f"reward/{r.name}/failures"] = r.take_failures()
            m[f"reward/{r.name}/clipped"] = r.take_clipped()
            take_stats = getattr(r, "take_stats", None)  # the LLM judge: calls, cache hits, retries, latency
            if take_stats is not None:
                m.update({f"reward/{r.name}/judge_{key}": float(val) for key, val in take_stats().items()})
        m["response/length_mean"] = float(lengths.mean())
        m["response/length_max"] = float(lengths.max())
        m["response/clip_frac"] = float(np.mean([f == "length" for f in data.finish_reasons]))
        m.update(upd)
        m["perf/tokens_per_s"] = total_tokens / t_total
        m["perf/rollout_tokens_per_s"] = data.rollout_tokens / max(data.rollout_seconds, 1e-9)
        if len(data.rank_rollout_tokens_per_s) > 1:  # colocated rollout: each rank's engine
            m.update({f"perf/rank{r}/rollout_tokens_per_s": v for r, v in enumerate(data.rank_rollout_tokens_per_s)})
        m.update({"time/rollout": data.rollout_seconds, "time/rewards": data.reward_seconds,
                  "time/advantages": t_adv, "time/update": t_upd, "time/sync": t_sync, "time/step": t_total})
        if self.world > 1 and self.tcfg.get("check_sync", False):
            m["dist/param_sum_spread"] = self._param_spread()
            # every rank computed the whole step's advantages: they must agree to the last bit
            m["dist/advantage_sum_spread"] = self._spread(float(adv.double().sum()))
        self.last_batch = data  # the step's samples (sample tables, benchmarks)
        return m

    @torch.no_grad()
    def _param_spread(self) -> float:
        """max - min over ranks of the sum of all parameters (0 when the ranks are in sync)."""
        # full (gathered under ZeRO-3) parameters: every rank walks them, the gather is collective
        return self._spread(sum(float(t.double().sum()) for _, t in named_weights_for_sync(self.engine)))

    def _spread(self, value: float) -> float:
        """max - min over ranks of ``value``."""
        vals = dist_utils.all_gather_object(float(value))
        return float(max(vals) - min(vals))

    def _sample_rows(self, data: StepData, k: int = 4) -> list[list[Any]]:
        rows = []
        for i in range(min(k, len(data.texts))):
            rows.append([self.step, int(data.group_ids[i]), data.texts[i][:2000]]
                        + [float(x) for x in data.rewards[i]])
        return rows

    def save(self) -> None:
        state = {"step": self.step, "data_position": self.data_position, "seed": int(self.cfg.seed),
                 "algorithm": str(self.cfg.algorithm.name), "weighting": self.weighting.state_dict()}
        save_checkpoint(self.engine, self.ckpt_root, self.step, state, rank=self.rank,
                        barrier=dist_utils.barrier, keep=int(self.tcfg.keep_checkpoints))

    def fit(self) -> list[dict[str, Any]]:
        """Run until ``total_steps``; returns this process's metric records."""
        total = int(self.tcfg.total_steps)
        history = []
        bar = tqdm(total=total, initial=self.step, desc=f"{self.cfg.algorithm.name}", disable=self.rank != 0,
                   dynamic_ncols=True)
        val_every, save_every = int(self.tcfg.val_every), int(self.tcfg.save_every)
        stop_after = self.tcfg.get("stop_after_steps")  # for tests: simulate an interruption
        self.stop_signal = None
        restore = self._catch_stop_signals()
        if self.step == 0 and self.tcfg.get("val_before_train", False) and self.rank == 0 and self.task.validation:
            start = {"step": 0, **self.validate()}  # the starting policy's validation, logged as step 0
            self.writer.write(start)
            self.tracker.log(start, 0)
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
                                                 self._sample_rows(self.last_batch), self.step)
                    bar.update(1)
                    bar.set_postfix({n[:12]: f"{m.get(f'reward/{n}/mean', float('nan')):.3f}" for n in self.reward_names}
                                    | {"s/step": f"{m['time/step']:.1f}"})
                history.append(m)
                if save_every > 0 and (self.step % save_every == 0 or self.step == total):
                    self.save()
                if stop_after is not None and self.step >= int(stop_after):
                    break
                if self.stop_signal is not None:  # SIGTERM/SIGINT: the step is finished, keep it
                    log.warning("stopping after step %d on signal %d: writing a checkpoint", self.step, self.stop_signal)
                    if not (save_every > 0 and self.step % save_every == 0):
                        self.save()
                    break
        finally:
            restore()
            bar.close()
        return history

    def _catch_stop_signals(self):
        """First SIGTERM/SIGINT: finish the current step, checkpoint, stop (a second one stops at
        once). Returns a function that restores the previous handlers."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

        def handler(signum, _frame):
            if self.stop_signal is not None:  # asked twice: stop now
                signal.signal(signum, previous[signum] if callable(previous[signum]) else signal.SIG_DFL)
                signal.raise_signal(signum)
                return
            self.stop_signal = signum
            log.warning("signal %d: finishing step %d, then checkpoint and stop (again to stop at once)",
                        signum, self.step + 1)

        for sig in previous:
            signal.signal(sig, handler)
        return lambda: [signal.signal(sig, old) for sig, old in previous.items()]

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.tracker.finish()
        if self.rollout is not None:
            self.rollout.close()
