"""Checks of a composed config that run before any model or dataset loads.

Every error names the offending key and the fix, e.g.::

    trainer.prompts_per_step * sampling.n = 30 samples cannot be split into mini_batches=4 ...
"""

from __future__ import annotations

import os
from typing import Any

from omegaconf import OmegaConf

from rewards import build_rewards
from rollout import ENGINES
from saw.algo.advantages import ESTIMATORS, WHITEN_MODES, resolve_algorithm
from saw.algo.policy_loss import AGG_MODES, KL_ESTIMATORS
from saw.algo.weighting import build_weighting
from saw.core.config import to_plain, to_plain_value
from saw.rl.batches import micro_layout
from saw.rl.engine import PRECISIONS, SCHEDULES
from saw.rl.step_data import PLACEMENTS, prompt_shard, rollout_tensor_parallel


class ConfigError(ValueError):
    """A bad config value; the message says which key and how to fix it."""


def _choice(value: Any, valid, key: str) -> None:
    if value not in valid:
        raise ConfigError(f"{key}={value!r} is not valid; choose one of: {', '.join(map(str, valid))}")


def validate_config(cfg: Any, world_size: int = 1) -> None:
    """Raise ConfigError for a config the trainer cannot run."""
    a, t, s = cfg.algorithm, cfg.trainer, cfg.sampling
    missing = [key for key in ("name", "estimator", "weighting") if OmegaConf.is_missing(a, key)]
    if missing:
        raise ConfigError(f"algorithm.{missing[0]} is not set: conf/algorithm/_base.yaml is the shared base of the "
                          "algorithm files, not an algorithm; choose one with algorithm=<file in conf/algorithm>")
    try:
        _, w_name = resolve_algorithm(str(a.estimator), str(a.weighting))
        # built once here so that bad options fail before any model loads
        num_rewards = len(cfg.task.get("rewards") or []) or 1
        weighting = build_weighting(w_name, num_rewards, **to_plain(a.get(str(a.weighting)), allow_none=True))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"algorithm: {exc} (set algorithm=<file in conf/algorithm>)") from exc
    if a.get("whiten") is not None:
        _choice(a.whiten, WHITEN_MODES, "algorithm.whiten")
    try:
        ENGINES.canonical(str(cfg.rollout.engine))
    except ValueError as exc:
        raise ConfigError(f"rollout.engine: {exc}") from exc
    _choice(t.precision, PRECISIONS, "trainer.precision")
    _choice(t.lr_schedule, SCHEDULES, "trainer.lr_schedule")
    _choice(t.loss_agg_mode, AGG_MODES, "trainer.loss_agg_mode")
    kl = cfg.get("kl") or {}
    _choice(kl.get("loss_estimator", "k3"), KL_ESTIMATORS, "kl.loss_estimator")
    _choice(kl.get("reward_estimator", "k1"), KL_ESTIMATORS, "kl.reward_estimator")
    for key in ("loss_coef", "reward_coef"):
        if float(kl.get(key) or 0.0) < 0:
            raise ConfigError(f"kl.{key} must be >= 0, got {kl.get(key)}")
    if float(kl.get("reward_coef") or 0.0) > 0 and ESTIMATORS.meta(resolve_algorithm(str(a.estimator), "static")[0]).get("per_reward"):
        raise ConfigError(f"kl.reward_coef={kl.reward_coef} needs an estimator that scalarises the rewards (grpo, "
                          f"grpo_nostd), not {a.estimator}: use kl=authors (reward KL for plain GRPO only), kl=uniform "
                          "(a KL loss for every method) or kl=none")
    if a.get("loss_agg_mode") is not None:
        _choice(a.loss_agg_mode, AGG_MODES, "algorithm.loss_agg_mode")
    _choice(int(t.zero_stage), (0, 1, 2, 3), "trainer.zero_stage")
    for key in ("total_steps", "prompts_per_step", "ppo_epochs", "mini_batches", "micro_batch_size"):
        if int(t[key]) < 1:
            raise ConfigError(f"trainer.{key} must be >= 1, got {t[key]}")
    if int(s.n) < 1:
        raise ConfigError(f"sampling.n must be >= 1, got {s.n}")
    if int(s.n) < 2 and not t.get("allow_single_sample", False):
        raise ConfigError(f"sampling.n={s.n}: group-normalised advantages need >= 2 completions per prompt (with one, "
                          "every advantage is 0 and nothing is learned); set sampling.n >= 2, or "
                          "trainer.allow_single_sample=true if that is what you want")
    if int(s.max_new_tokens) < 1:
        raise ConfigError(f"sampling.max_new_tokens must be >= 1, got {s.max_new_tokens}")
    if not 0.0 < float(s.get("top_p", 1.0)) <= 1.0:
        raise ConfigError(f"sampling.top_p must be in (0, 1], got {s.top_p}")
    if float(s.temperature) < 0:
        raise ConfigError(f"sampling.temperature must be >= 0, got {s.temperature}")
    _choice(t.get("rollout_placement", "driver"), PLACEMENTS, "trainer.rollout_placement")
    if t.get("rollout_placement", "driver") == "colocated":
        try:
            prompt_shard(int(t.prompts_per_step), world_size, 0)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        tp = rollout_tensor_parallel(cfg.rollout)
        if world_size % tp:
            raise ConfigError(f"rollout.tensor_parallel_size={tp} does not divide the {world_size} ranks: colocated "
                              "rollout runs one engine per group of tensor_parallel_size ranks")
    try:
        micro_layout(int(t.prompts_per_step), int(s.n), world_size, int(t.mini_batches), int(t.micro_batch_size),
                     bool(t.get("shared_prefix", False)))
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if t.get("shared_prefix", False) and t.get("gradient_checkpointing", False):
        raise ConfigError("trainer.shared_prefix needs the key/value cache, which gradient checkpointing turns off: "
                          "set trainer.gradient_checkpointing=false or trainer.shared_prefix=false")
    if t.get("shared_prefix", False) and int(t.zero_stage) == 3:
        raise ConfigError("trainer.shared_prefix runs two forwards per backward, not supported under ZeRO-3: "
                          "set trainer.shared_prefix=false")
    if t.get("clip_ratio_c") is not None and float(t.clip_ratio_c) <= 1.0:
        raise ConfigError(f"trainer.clip_ratio_c={t.clip_ratio_c} must be > 1 (dual-clip bound) or null")
    if float(t.lr) <= 0:
        raise ConfigError(f"trainer.lr must be > 0, got {t.lr}")
    if t.get("lora", {}).get("enabled") and int(t.zero_stage) == 3:
        raise ConfigError("trainer.lora.enabled with trainer.zero_stage=3 is not supported; use stage 0-2")
    if weighting.needs_gradients and int(t.zero_stage) == 3:
        raise ConfigError(f"algorithm.weighting={a.weighting} needs whole parameters on every rank; "
                          "use trainer.zero_stage 0-2")
    m = cfg.model
    if str(m.get("source", "hf")) == "hf":
        path = str(m.path)
        looks_local = path.startswith(("/", "./", "../", "~")) or os.path.exists(os.path.expanduser(path))
        if looks_local and not os.path.isdir(os.path.expanduser(path)):
            raise ConfigError(f"model.path={path} does not exist: point model.path at a model folder (config.json + "
                              "weights), or use model=smollm2-135m for the embedded default")
        if looks_local and not os.path.isfile(os.path.join(os.path.expanduser(path), "config.json")):
            raise ConfigError(f"model.path={path} holds no config.json: point model.path at a Hugging Face model folder "
                              "(config.json, tokenizer and weights)")
    rewards = cfg.task.get("rewards")
    if rewards is not None:
        try:  # names, options and declared ranges, before any model loads or SFT starts
            build_rewards(to_plain_value(rewards))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"task.rewards: {exc}") from exc
    if a.get("weights") is not None and rewards is not None and len(a.weights) != len(rewards):
        raise ConfigError(f"algorithm.weights has {len(a.weights)} entries but task {cfg.task.name!r} has "
                          f"{len(rewards)} rewards ({', '.join(str(r if isinstance(r, str) else r.get('name')) for r in rewards)})")
