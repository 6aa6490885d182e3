"""Supervised warm start (ToolRL's "SFT + GRPO"): prompt -> ground truth, loss on completion tokens.

The result is a plain HF model folder cached under ``<cache_dir>/sft/<key>`` where the key hashes
everything that determines it (base model path, task config, SFT config); a second call with the
same inputs reuses it. The folder is written atomically (temp dir + rename).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from tqdm.auto import tqdm

from saw.core.config import to_plain_value

from transformers import AutoTokenizer

from saw.rl import distributed as dist_utils
from saw.rl.batches import PromptSampler, prompt_limit, seed_everything
from saw.rl.logprobs import build_token_batch, response_logprobs
from rewards import build_rewards
from saw.core.io import MetricsWriter, explain_write_error, make_readable
from saw.rl.engine import autocast_dtype, build_policy, named_weights_for_sync
from saw.tasks import build_task

log = logging.getLogger(__name__)


def sft_cache_key(model_path: str, task_cfg: Any, sft_cfg: Any, max_prompt_length: int | None = None) -> str:
    """Hash of everything the warm start depends on: model, task config, SFT config, prompt limit."""
    payload = {"model": str(model_path), "prompt_limit": max_prompt_length,
               "task": to_plain_value(task_cfg),
               "sft": to_plain_value(sft_cfg)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def save_hf_model(engine, tokenizer, out_dir: Path, *, rank: int = 0, dtype: torch.dtype = torch.bfloat16) -> Path:
    """Write the engine's policy as a plain HF model folder, atomically (collective under ZeRO-3)."""
    state = {name: t for name, t in named_weights_for_sync(engine, dtype=dtype)}
    if rank == 0:
        module = engine.module
        base = module.get_base_model() if hasattr(module, "get_base_model") else module
        tmp = out_dir.with_name(out_dir.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            base.save_pretrained(tmp, state_dict=state)
            tokenizer.save_pretrained(tmp)
        except (OSError, RuntimeError) as exc:
            raise explain_write_error(exc, tmp) from exc
        make_readable(tmp)  # safetensors writes 0600 files
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    dist_utils.barrier()
    return out_dir


def run_sft(cfg: Any, model_path: str) -> Path:
    """Train (or reuse) the SFT warm start of ``cfg.task`` from ``model_path``; returns its folder."""
    s = cfg.sft
    limit = prompt_limit(cfg)
    key = sft_cache_key(model_path, cfg.task, s, limit)
    out = Path(cfg.cache_dir) / "sft" / f"{Path(str(model_path)).name}-{cfg.task.name}-{key}"
    if (out / "config.json").exists():
        log.info("SFT warm start found in cache: %s", out)
        return out
    rank, world = dist_utils.init_distributed(cfg.trainer.get("dist_backend"))
    seed_everything(int(s.seed))
    task = build_task(cfg.task)
    task.check_records(build_rewards(to_plain_value(task.reward_specs)))  # no SFT on unscorable targets
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    # the same prompts as the RL stage (over-long ones dropped, see Task.filter_for_training)
    task.filter_for_training(tokenizer, limit)
    bs, micro = int(s.batch_size), int(s.micro_batch_size)
    if bs % (micro * world):
        raise ValueError(f"sft.batch_size={bs} must be a multiple of sft.micro_batch_size * world size = {micro * world}")
    grad_accum = bs // (micro * world)
    tcfg = OmegaConf.create({"lr": float(s.lr), "betas": [0.9, 0.999], "weight_decay": 0.0,
                             "lr_schedule": "constant", "warmup_steps": int(s.warmup_steps),
                             "grad_clip": 1.0, "zero_stage": int(cfg.trainer.zero_stage),
                             "precision": str(s.precision), "gradient_checkpointing": bool(s.gradient_checkpointing),
                             "lora": {"enabled": False}})
    engine = build_policy(model_path, tcfg, micro_batch_size=micro, grad_accum=grad_accum, world_size=world,
                          total_optimizer_steps=int(s.steps))
    amp = autocast_dtype(str(s.precision))
    sampler = PromptSampler(len(task.train), int(s.seed))
    eos = tokenizer.eos_token_id
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = MetricsWriter(out.parent / f"{out.name}.metrics.jsonl", resume_step=0) if rank == 0 else None
    max_len = int(s.max_length)
    engine.train()
    for step in tqdm(range(int(s.steps)), desc="sft", disable=rank != 0):
        t0 = time.perf_counter()
        idx = sampler.take(step * bs, bs)[rank::world]
        prompts, targets = [], []
        for i in idx:
            rec = task.train[i]
            target = tokenizer(task.sft_target(rec), add_special_tokens=False)["input_ids"] + [eos]
            target = target[: max_len // 2]
            ids, _ = task.encode_prompt(tokenizer, rec, max_len - len(target))
            prompts.append(ids)
            targets.append(target)
        batch = build_token_batch(prompts, targets, tokenizer.pad_token_id)
        n_tok = max(dist_utils.all_reduce_mean(float(batch.response_mask.sum())), 1.0)
        loss_sum = 0.0
        for m0 in range(0, len(batch), micro):
            mb = batch.slice(slice(m0, m0 + micro))
            lp, _ = response_logprobs(engine, mb, autocast_dtype=amp)
            loss = -(lp * mb.response_mask).sum() / n_tok
            engine.backward(loss, scale_wrt_gas=False)
            engine.step()
            loss_sum += float(loss.detach())
        loss_sum = dist_utils.all_reduce_mean(loss_sum) * world  # sum of the per-rank token-normalised parts
        if writer is not None:
            writer.write({"step": step + 1, "sft/loss": loss_sum, "time/step": time.perf_counter() - t0})
    if writer is not None:
        writer.close()
    save_hf_model(engine, tokenizer, out, rank=rank)
    del engine
    log.info("SFT warm start written to %s", out)
    return out
