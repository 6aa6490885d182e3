"""SAW: Stage-Aware Dynamic Weighting for multi-reward RL of LLMs, and the RL core around it."""

from saw.advantages import ESTIMATORS, compute_advantages
from saw.weighting import WEIGHTINGS, saw_weights

__all__ = ["ESTIMATORS", "WEIGHTINGS", "compute_advantages", "saw_weights"]
__version__ = "0.1.0"

from saw import gradient_weighting as _gradient_weighting  # noqa: E402,F401  (registers "gradient")
