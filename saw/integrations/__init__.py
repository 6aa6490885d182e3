"""Plug-ins that bring this repo's reward weightings (SAW, static, ...) to other trainers.

    saw.integrations.trl    TRL's GRPOTrainer: ``SAWGRPOTrainer`` / ``RewardWeightingMixin``
                            (optional extra: ``pip install .[trl]``; pins trl==1.16.0)

This package imports nothing heavy: each integration module imports its trainer library itself,
so ``import saw.integrations`` works without TRL installed.
"""

__all__: list[str] = []
