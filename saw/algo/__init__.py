"""The method, as pure tensor maths (no I/O): reward weightings, advantage estimators, policy loss.

    weighting.py    WEIGHTINGS: static, saw (and the stateful "gradient" of Lu et al., gradient.py)
    advantages.py   ESTIMATORS: grpo, grpo_nostd, gdpo; ``compute_advantages`` runs weighting + estimator
    policy_loss.py  PPO-clip surrogate, KL estimators, entropy, loss aggregation
"""

from saw.algo.advantages import ESTIMATORS, compute_advantages
from saw.algo.weighting import WEIGHTINGS, saw_weights
from saw.algo import gradient as _gradient  # noqa: F401  (registers the "gradient" weighting)
from saw.algo import weightings_more as _more  # noqa: F401  (registers sa_mrpo, mo_grpo, dvao)

__all__ = ["ESTIMATORS", "WEIGHTINGS", "compute_advantages", "saw_weights"]
