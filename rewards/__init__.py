"""Reward functions with declared ranges, and a registry that builds them by name.

Built-in rewards (registered on import): ``toolcall_format`` {0, 1}, ``toolcall_correctness``
[-3, 3] (ToolRL's rules, :mod:`rewards.toolcall`), ``summary_quality`` [0, 1] (ROUGE),
``summary_conciseness`` [0, 1] (word budget, :mod:`rewards.summarize`), ``llm_judge`` [0, 10]
(OpenAI-compatible endpoint, :mod:`rewards.judge`).
"""

from rewards.base import REWARDS, Reward, build_reward, build_rewards, split_bad_records
from rewards import judge, summarize, toolcall  # noqa: F401  (register the built-in rewards)

__all__ = ["REWARDS", "Reward", "build_reward", "build_rewards", "split_bad_records"]
