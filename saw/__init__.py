"""SAW: Stage-Aware Dynamic Weighting for multi-reward RL of LLMs, and the RL engine around it.

Sub-packages, lowest layer first (imports only run downwards; ``tests/test_layers.py`` checks it):

    saw.core     registry and small utilities (no torch): what rewards/ and rollout/ may import
    saw.algo     the method: weightings (SAW, static, +Gradient), advantage estimators, policy loss
    saw.tasks    datasets, prompt templates and reward specs of each task
    saw.models   model folders: the embedded SmolLM2 and tiny random test models
    saw.rl       the engine: trainer, SFT warm start, DeepSpeed engine, checkpoints, metrics

This module stays light: ``import saw`` imports no torch. ``saw.compute_advantages`` and
``saw.saw_weights`` are loaded on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["ESTIMATORS", "WEIGHTINGS", "compute_advantages", "saw_weights"]


def __getattr__(name: str):
    if name in __all__:
        from saw import algo

        return getattr(algo, name)
    raise AttributeError(f"module 'saw' has no attribute {name!r}")
