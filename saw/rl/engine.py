"""The trained policy: a transformers causal LM owned by a DeepSpeed engine.

``build_policy`` loads the model (optionally with LoRA adapters and gradient checkpointing),
creates AdamW and a warm-up learning-rate schedule, and hands all three to
``deepspeed.initialize`` with the configured ZeRO stage and precision:

    precision=bf16_autocast  fp32 weights and optimizer, forward/backward under CPU/GPU bf16 autocast
    precision=bf16           DeepSpeed bf16 mode (bf16 weights, fp32 master copy in the optimizer)
    precision=fp32           plain fp32
    precision=auto           bf16_autocast where bf16 is native (GPU, AVX512-BF16/AMX CPU), else fp32

``named_weights_for_sync`` yields full (gathered under ZeRO-3, LoRA-merged) HF-named tensors for
the rollout engine.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
from typing import Any, Iterator

import torch
from transformers import AutoModelForCausalLM

from saw.core.hardware import fast_bf16

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "bf16_autocast", "bf16", "fp32")


def resolve_precision(precision: str) -> str:
    """``auto`` -> bf16_autocast where bf16 is native, else fp32 (emulated bf16 is ~20x slower)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    return "bf16_autocast" if fast_bf16() else "fp32"
SCHEDULES = ("constant", "linear", "cosine")


def lr_lambda(schedule: str, warmup_steps: int, total_steps: int, min_ratio: float = 0.0):
    """Multiplier of the base lr at optimizer step s: linear warm-up, then the schedule."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown lr schedule {schedule!r}; valid: {', '.join(SCHEDULES)}")

    def fn(s: int) -> float:
        if warmup_steps > 0 and s < warmup_steps:
            return (s + 1) / warmup_steps
        if schedule == "constant" or total_steps <= warmup_steps:
            return 1.0
        progress = min(1.0, (s - warmup_steps) / max(1, total_steps - warmup_steps))
        if schedule == "linear":
            return max(min_ratio, 1.0 - progress * (1.0 - min_ratio))
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return fn


def autocast_dtype(precision: str) -> torch.dtype | None:
    return torch.bfloat16 if resolve_precision(precision) == "bf16_autocast" else None


def load_causal_lm(path: str, *, precision: str = "fp32", trust_remote_code: bool = False,
                   gradient_checkpointing: bool = False, lora: Any = None):
    dtype = torch.bfloat16 if resolve_precision(precision) == "bf16" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, trust_remote_code=trust_remote_code)
    model.config.use_cache = False
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if lora is not None and lora.get("enabled", False):
        from peft import LoraConfig, get_peft_model  # optional: only with trainer.lora.enabled

        model = get_peft_model(model, LoraConfig(
            r=int(lora.get("r", 16)), lora_alpha=int(lora.get("alpha", 32)),
            lora_dropout=float(lora.get("dropout", 0.0)),
            target_modules=lora.get("target_modules", "all-linear"), task_type="CAUSAL_LM"))
        if gradient_checkpointing:
            model.enable_input_require_grads()
    return model


def deepspeed_config(t: Any, *, micro_batch_size: int, grad_accum: int, world_size: int) -> dict:
    """DeepSpeed config dict from the trainer config ``t``."""
    cfg: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": micro_batch_size,
        "gradient_accumulation_steps": grad_accum,
        "train_batch_size": micro_batch_size * grad_accum * world_size,
        "gradient_clipping": float(t.grad_clip) if t.grad_clip else 0.0,
        "zero_optimization": {"stage": int(t.zero_stage)},
        "bf16": {"enabled": resolve_precision(str(t.precision)) == "bf16"},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
    if int(t.zero_stage) == 3:
        cfg["zero_optimization"].update({"stage3_gather_16bit_weights_on_model_save": True})
    return cfg


def build_policy(model_path: str, t: Any, *, micro_batch_size: int, grad_accum: int, world_size: int,
                 total_optimizer_steps: int, trust_remote_code: bool = False):
    """(DeepSpeed engine, model) for training; ``t`` is the trainer config."""
    import deepspeed  # heavy optional: the training stack

    model = load_causal_lm(model_path, precision=t.precision, trust_remote_code=trust_remote_code,
                           gradient_checkpointing=bool(t.gradient_checkpointing), lora=t.get("lora"))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=float(t.lr), betas=tuple(t.get("betas", (0.9, 0.999))),
                                  weight_decay=float(t.weight_decay), eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(t.lr_schedule, int(t.warmup_steps), total_optimizer_steps))
    ds_cfg = deepspeed_config(t, micro_batch_size=micro_batch_size, grad_accum=grad_accum, world_size=world_size)
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, lr_scheduler=sched, config=ds_cfg)
    return engine


_LAYER_INDEX = re.compile(r"\.layers\.(\d+)\.")


def select_parameters(module, layer_span: tuple[float, float] | None = None) -> list[torch.nn.Parameter]:
    """Trainable parameters of ``module``; with ``layer_span`` = (lo, hi) only those of decoder
    layers i with lo * L <= i < hi * L (L = number of layers, found from the ``.layers.<i>.`` names).

    Raises ValueError when the model has no such layer names or the span selects no layer.
    """
    named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    if layer_span is None:
        return [p for _, p in named]
    indexed = [(int(m.group(1)), p) for n, p in named if (m := _LAYER_INDEX.search(n))]
    if not indexed:
        raise ValueError("layer_span needs parameters named '...layers.<i>...' (a decoder stack); "
                         "this model has none: set algorithm.gradient.layer_span=null")
    depth = max(i for i, _ in indexed) + 1
    lo, hi = layer_span
    chosen = [p for i, p in indexed if lo * depth <= i < hi * depth]
    if not chosen:
        raise ValueError(f"layer_span={list(layer_span)} selects no layer of {depth}; widen it")
    return chosen


def grad_norm(engine) -> float:
    """Global gradient norm of the last optimizer step (before clipping)."""
    norm = engine.get_global_grad_norm()
    if norm is not None:
        return float(norm)
    return float("nan")


def current_grad_norm(module) -> float:
    """L2 norm of the gradients now held in ``module``'s parameters (ZeRO stage 0)."""
    sq = 0.0
    for p in module.parameters():
        if p.grad is not None:
            sq += float(p.grad.detach().float().pow(2).sum())
    return math.sqrt(sq)


def _strip_peft_name(name: str) -> str:
    name = name.replace("base_model.model.", "", 1) if name.startswith("base_model.model.") else name
    return name.replace(".base_layer", "")


@contextlib.contextmanager
def _merged_lora(module):
    merged = hasattr(module, "merge_adapter") and hasattr(module, "peft_config")
    if merged:
        module.merge_adapter()
    try:
        yield merged
    finally:
        if merged:
            module.unmerge_adapter()


def named_weights_for_sync(engine, dtype: torch.dtype | None = None,
                           copy_to_cpu: bool = True) -> Iterator[tuple[str, torch.Tensor]]:
    """Full HF-named weights of the policy, one at a time (gathered under ZeRO-3, LoRA merged).

    Every rank must iterate it under ZeRO-3 (the gather is collective); tensors are yielded on
    every rank: detached CPU copies, or with ``copy_to_cpu=False`` tensors on the policy's device
    for an in-process engine to copy from (the parameters themselves, read-only; a device copy
    under ZeRO-3, whose gathered parameter is released once the next one is gathered).
    """
    import deepspeed  # heavy optional: the training stack

    module = engine.module
    zero3 = engine.zero_optimization_stage() == 3
    with _merged_lora(module) as is_peft:
        for name, param in module.named_parameters():
            if is_peft and "lora_" in name:
                continue
            ctx = deepspeed.zero.GatheredParameters([param], modifier_rank=None) if zero3 else contextlib.nullcontext()
            with ctx:
                t = param.detach()
                t = t.to(dtype) if dtype is not None else t
                if copy_to_cpu:
                    t = t.cpu().clone()
                elif zero3 or is_peft:  # released after this context / un-merged after the loop
                    t = t.clone()
                yield (_strip_peft_name(name) if is_peft else name), t
