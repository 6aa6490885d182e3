"""Pieces both engines share, so that they return the same fields with the same meaning.

Conventions (both engines):

1. ``completion_ids`` end with the token that finished the sample: the EOS token when the model
   emitted one (it is kept, with its logprob, so the trainer learns to stop), or the token that
   completed a stop string. ``text`` never contains the EOS token (special tokens are skipped) or
   the stop string.
2. ``text`` is always ``tokenizer.decode(completion_ids, skip_special_tokens=True)`` cut before the
   first stop string, computed here from the ids, never taken from an engine's own detokenizer.
3. A stop string ends a sample at the shortest prefix of its ids whose decoded text contains it;
   with several stop strings the one that starts first in the text wins.
4. ``finish_reason`` is ``"stop"`` for EOS or a stop string, ``"length"`` when the sample used up
   ``max_new_tokens`` or the room left by the model's maximum length.
5. ``logprobs`` are the log-probabilities of the chosen tokens under the distribution the token was
   drawn from ("processed" logprobs): ``log_softmax(filter_top_k_top_p(logits / temperature))``;
   for greedy decoding (temperature 0) ``log_softmax(logits)``. With temperature 1 and no top-k/top-p
   they equal the raw model logprobs.
6. Seeds: each engine holds one seed (its config ``seed``). Call ``i`` of ``generate`` samples with
   seed ``derive_call_seed(seed, i)``, or with ``SamplingConfig.seed`` when that is set, from a
   random state of its own: the caller's global torch RNG is left untouched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch

from saw.core.config import dtype_name
from saw.core.hardware import fast_bf16

SEED_STRIDE = 1_000_003


def derive_call_seed(engine_seed: int, call_index: int, explicit: int | None = None) -> int:
    """Seed of one generate call: ``explicit`` when given, else a fixed function of the engine seed
    and the call index (so a run is reproducible from the engine seed alone)."""
    if explicit is not None:
        return int(explicit) % (2**63)
    return (int(engine_seed) * SEED_STRIDE + int(call_index)) % (2**63)


def settings_from_mapping(cls, mapping: Mapping[str, Any] | None, engine: str):
    """Build the settings dataclass ``cls`` from a config mapping; unknown keys raise ValueError."""
    data = dict(mapping or {})
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(valid))
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown} for rollout engine {engine!r}; "
                         f"valid settings: {', '.join(valid)}")
    settings = cls(**data)
    if hasattr(settings, "validate"):
        settings.validate()
    return settings


def eos_token_ids(tokenizer, model_path: str | os.PathLike) -> list[int]:
    """Token ids that end a completion: the tokenizer's EOS plus the EOS id(s) of the model's
    ``generation_config.json`` (what vLLM and transformers each stop on by default)."""
    ids: list[int] = []
    if tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    gen_cfg = Path(model_path) / "generation_config.json"
    if gen_cfg.exists():
        value = json.loads(gen_cfg.read_text()).get("eos_token_id")
        for t in ([value] if isinstance(value, int) else (value or [])):
            if int(t) not in ids:
                ids.append(int(t))
    if not ids:
        raise ValueError(f"model {model_path} defines no EOS token (tokenizer or generation_config.json); "
                         "set tokenizer.eos_token so that completions can end")
    return ids


def _decode(tokenizer, ids: Sequence[int]) -> str:
    return tokenizer.decode(list(ids), skip_special_tokens=True)


def _first_stop(text: str, stop: Sequence[str]) -> int:
    """Start of the earliest stop string in ``text`` (-1 if none)."""
    positions = [p for p in (text.find(s) for s in stop if s) if p >= 0]
    return min(positions) if positions else -1


def finish_completion(ids: Sequence[int], logprobs: Sequence[float], *, tokenizer, eos_ids: Iterable[int],
                      stop: Sequence[str], length_cap: int, fallback_reason: str = "length"
                      ) -> tuple[list[int], list[float], str, str]:
    """Apply the shared conventions (module docstring) to one raw completion.

    ``ids``/``logprobs``: the engine's completion (same length), possibly with tokens after EOS.
    ``length_cap``: the most tokens this sample could get. ``fallback_reason``: the engine's own
    finish reason, used only when neither EOS, a stop string nor the cap explains the end.
    Returns ``(completion_ids, logprobs, text, finish_reason)``.
    """
    ids = [int(t) for t in ids]
    logprobs = [float(x) for x in logprobs]
    if len(ids) != len(logprobs):
        raise RuntimeError(f"engine returned {len(ids)} tokens but {len(logprobs)} logprobs")
    eos = set(eos_ids)
    eos_at = next((i for i, t in enumerate(ids) if t in eos), None)
    if eos_at is not None:
        ids, logprobs = ids[:eos_at + 1], logprobs[:eos_at + 1]
    text = _decode(tokenizer, ids)
    stop = [s for s in stop if s]
    if stop and _first_stop(text, stop) >= 0:
        # shortest prefix whose text holds a stop string (decoding is prefix-monotone)
        lo, hi = 1, len(ids)
        while lo < hi:
            mid = (lo + hi) // 2
            if _first_stop(_decode(tokenizer, ids[:mid]), stop) >= 0:
                hi = mid
            else:
                lo = mid + 1
        ids, logprobs = ids[:lo], logprobs[:lo]
        text = _decode(tokenizer, ids)
        return ids, logprobs, text[:_first_stop(text, stop)], "stop"
    if eos_at is not None:
        return ids, logprobs, text, "stop"
    if len(ids) >= length_cap:
        return ids, logprobs, text, "length"
    return ids, logprobs, text, fallback_reason


def length_caps(prompt_ids: Sequence[Sequence[int]], max_new_tokens: int, max_model_len: int) -> list[int]:
    """Most new tokens each prompt may get: ``min(max_new_tokens, max_model_len - len(prompt))``."""
    return [max(1, min(max_new_tokens, max_model_len - len(p))) for p in prompt_ids]


def torch_dtype(name: str | None, default: torch.dtype | None = None) -> torch.dtype | str:
    """``"auto"``/None -> ``"auto"`` (the checkpoint's dtype; float32 on a CPU without native bf16,
    where bf16 is emulated and many times slower), else the torch dtype of that name."""
    if name in (None, "auto"):
        if default is not None:
            return default
        return "auto" if fast_bf16() else torch.float32
    try:
        return getattr(torch, dtype_name(name))
    except ValueError:
        raise ValueError(f"unsupported rollout dtype {name!r}; use auto, float32, bfloat16 or float16") from None


@contextlib.contextmanager
def private_rng(seed: int):
    """Seed the global torch RNG (CPU and CUDA) with ``seed`` for the block, then restore the
    caller's RNG state: sampling inside does not disturb, and is not disturbed by, the trainer."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
