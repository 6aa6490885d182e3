"""SAW (and the other registered weightings of this repo) inside TRL's ``GRPOTrainer``.

Optional extra: ``pip install .[trl]`` (pins trl==1.16.0). Usage::

    from trl import GRPOConfig
    from saw.integrations.trl import SAWGRPOTrainer, declare_reward_min

    @declare_reward_min(0.0)                       # SAW needs each reward's theoretical minimum
    def correct(completions, **kw): ...
    def short(completions, **kw): ...

    trainer = SAWGRPOTrainer(
        model="path/or/id", reward_funcs=[correct, short], train_dataset=ds,
        args=GRPOConfig(..., multi_objective_aggregation="normalize_then_sum"),   # or sum_then_normalize
        weighting="saw",                           # any name in saw.algo.WEIGHTINGS (default "saw")
        reward_min={"short": -1.0},                # by reward-function name (or a list in order)
    )
    trainer.train()                                # logs reward/<name>/cv and reward/<name>/weight

How it hooks into TRL. TRL 1.16 has no public hook between the rewards and the advantages, so
:class:`RewardWeightingMixin` overrides one private method, ``GRPOTrainer._calculate_rewards``
(signature checked when the trainer is built; tested against trl==1.16.0, a warning is issued for
other versions). It calls TRL's own method, which returns the reward matrix Tensor[N, K] already
gathered over all processes, computes the weighting on that global matrix (float64, on the CPU,
with the same inputs and operations on every process, hence bitwise the same weights everywhere)
and sets ``self.reward_weights`` to the coefficients, which TRL then applies itself, in both of its
aggregation modes, a few lines later in ``_generate_and_score_completions``. TRL's own
normalisation is used unchanged; only the weights change each step. The static weights of the
config (``GRPOConfig.reward_weights``, default ones) become the priorities alpha_k of the dynamic
weightings (``trainer.reward_priorities``); with ``weighting="static"`` the plug-in applies them as
they are and TRL's advantages are unchanged. Per step ``reward/<name>/cv`` (the CV of each reward
after the shift by its minimum) and ``reward/<name>/weight`` (the coefficient applied) are added
to TRL's metrics (``eval_``-prefixed in evaluation). Weightings that need per-objective policy
gradients (``needs_gradients``: the "+Gradient" baseline, ``gradient``) are refused: they need
this repo's trainer (``saw.rl``).

What TRL computes, and the matching ``compute_advantages`` call (:func:`compute_advantages_options`).
r: the gathered reward matrix [N, K] (float32, NaN = reward function returned None), groups: the
``num_generations`` consecutive rows of each prompt, c_k: the coefficients set by the plug-in
(alpha_k w'_k for SAW's GRPO host, K alpha_k w'_k for its GDPO host, as ``compute_advantages``),
std: unbiased (ddof=1, TRL's ``nanstd``), eps = 1e-4 (TRL's constant; this repo's default is 1e-6)::

    sum_then_normalize, scale_rewards="group" (TRL's default):
        R_i = nansum_k c_k r_ik;  A_i = (R_i - mean_g R) / (std_g R + 1e-4)
        = compute_advantages(r, group_ids, estimator="grpo", weighting=W, weights=alpha,
                             reward_min=m, eps=1e-4)
    sum_then_normalize, scale_rewards="none":   A_i = R_i - mean_g R   -> estimator="grpo_nostd"
    sum_then_normalize, scale_rewards="batch":  R_i - mean_g R over the std of the whole batch:
        no estimator of this repo computes it (the weights are applied all the same)
    normalize_then_sum (TRL ignores scale_rewards here; GDPO):
        A_ik = (r_ik - mean_g r_k) / (std_g r_k + 1e-4);  S_i = nansum_k c_k A_ik
        A_i = (S_i - mean S) / (std S + 1e-4)      whitening over the N responses, once each
        = compute_advantages(..., estimator="gdpo", eps=1e-4, whiten="sequence")
        (this repo's GDPO whitens per token by default, as the SAW authors' verl code:
        whiten="token", token-weighted, (A - mean) * rsqrt(var + 1e-8); TRL's is per sequence)

Both normalise a flat group (std 0) to advantage 0, and both leave NaN rewards out: 0 in the
GRPO sum, left out of the GDPO per-reward group statistics with per-reward advantage 0 (a group
with one valid value: 0 in both). Residual differences, all exactly zero in the usual case:

1. Precision: TRL computes in float32 (rewards, coefficients, advantages); ``compute_advantages``
   in float64. Advantages agree to float32 rounding (about 1e-6 for advantages of order 1), with
   one exception: in a group whose values (weighted totals for sum_then_normalize, one reward for
   normalize_then_sum) are all equal, TRL's float32 group mean can be an ulp away from them (seen
   with group sizes 3, 5-8, 12, 16, 32 in torch 2.13; not with 2 or 4); its std is then about an ulp too, and
   ulp / (ulp + 1e-4) gives advantages of up to about 1.2e-3 x |value| (measured: 2.4e-3 for
   values up to 3) where ``compute_advantages`` gives exactly 0. Values exact in binary with few
   digits (0, 0.5, 1, small integers) have exact float32 group means.
2. Unscorable rows (every reward NaN): TRL leaves them out of the group mean/std (GRPO) or of the
   batch whitening (GDPO) and gives them advantage 0; ``compute_advantages`` counts them as total
   reward 0 (GRPO) or as a response with advantage 0 before the whitening (GDPO).
3. TRL's logged ``reward`` and ``reward_std`` are computed with ``self.reward_weights``, i.e. with
   the coefficients the plug-in set for the step.

Reward minima (needed by weightings that declare ``needs_reward_min``, e.g. SAW) are declared per
reward function: the trainer's ``reward_min`` argument (a mapping name -> minimum, or a sequence in
the order of the reward functions, TRL's environment rewards last), else a ``reward_min``
attribute of the function (:func:`declare_reward_min`, or :func:`trl_reward`, which wraps a
``rewards.Reward`` of this repo and takes its declared ``min``). For the other weightings a missing
minimum is the column's batch minimum (only their CV report uses it).
"""

from __future__ import annotations

import inspect
import json
import math
import warnings
from typing import Any, Callable, Mapping, Sequence, TypeVar

import torch
from torch import Tensor

try:
    import trl
    from trl import GRPOTrainer
    from trl.trainer.utils import get_callable_name
except ImportError as exc:  # optional extra
    raise ImportError(
        "saw.integrations.trl needs TRL (trl==1.16.0), an optional extra of this package: "
        "pip install .[trl]   (or: pip install --no-deps -r requirements/trl.txt)"
    ) from exc

from rewards.base import Reward
from saw.algo.weighting import WEIGHTINGS, Weighting, build_weighting

__all__ = [
    "TRL_VERSION", "TRL_EPS", "RewardWeightingMixin", "SAWGRPOTrainer", "compute_advantages_options",
    "declare_reward_min", "trl_reward",
]

TRL_VERSION = "1.16.0"  # the version whose private _calculate_rewards is overridden (and tested)
TRL_EPS = 1e-4  # TRL's constant in (x - mean) / (std + 1e-4), group and batch alike
AGGREGATIONS = ("sum_then_normalize", "normalize_then_sum")
_HOOK_PARAMS = ["self", "inputs", "prompts", "completions", "completion_ids_list"]
# keyword arguments TRL passes to reward functions besides the dataset columns
_TRL_REWARD_KWARGS = {"completion_ids", "trainer_state", "log_extra", "log_metric", "environments"}

if getattr(trl, "__version__", "unknown") != TRL_VERSION:
    warnings.warn(
        f"saw.integrations.trl overrides GRPOTrainer._calculate_rewards (a private method) and is tested "
        f"with trl=={TRL_VERSION}; found trl {getattr(trl, '__version__', 'unknown')}. Install the pin: "
        "pip install .[trl]", stacklevel=2)

F = TypeVar("F", bound=Callable[..., Any])


# ----------------------------------------------------------------------------- reward functions
def declare_reward_min(value: float) -> Callable[[F], F]:
    """Decorator: declare the theoretical minimum of a TRL reward function (SAW shifts by it)."""
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"a reward minimum must be finite, got {value}")

    def deco(fn: F) -> F:
        fn.reward_min = value  # type: ignore[attr-defined]
        return fn

    return deco


def _completion_text(completion: Any) -> str:
    """A TRL completion's text: a string, or chat messages (the last one's content)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content") or "")
    return str(completion)


def trl_reward(reward: Reward) -> Callable[..., list[float]]:
    """A TRL reward function from a ``rewards.Reward`` of this repo (named and bounded like it).

    Each completion is scored against a record made of its prompt and the dataset's columns
    (``ground_truth``, ``extra_info`` (JSON strings are decoded), ...); the function carries the
    reward's ``min`` as ``reward_min``, and reports scorer failures as ``reward/<name>/failures``.
    """

    def fn(prompts, completions, **kwargs):
        n = len(completions)
        log_metric = kwargs.get("log_metric")
        columns = {k: v for k, v in kwargs.items()
                   if k not in _TRL_REWARD_KWARGS and isinstance(v, (list, tuple)) and len(v) == n}
        records = []
        for i in range(n):
            record = {"prompt": prompts[i], **{k: v[i] for k, v in columns.items()}}
            if isinstance(record.get("extra_info"), str):
                try:
                    record["extra_info"] = json.loads(record["extra_info"])
                except ValueError:
                    pass
            records.append(record)
        values = reward([_completion_text(c) for c in completions], records)
        if callable(log_metric):
            log_metric(f"reward/{reward.name}/failures", float(reward.take_failures()))
        return values

    fn.__name__ = fn.__qualname__ = reward.name
    fn.reward_min = float(reward.min)  # type: ignore[attr-defined]
    fn.reward_max = float(reward.max)  # type: ignore[attr-defined]
    return fn


def _resolve_reward_min(names: Sequence[str], funcs: Sequence[Any],
                        reward_min: Mapping[str, float] | Sequence[float] | None) -> list[float | None]:
    """Each reward function's declared minimum (None: not declared)."""
    out: list[float | None] = [getattr(f, "reward_min", None) for f in funcs]
    if isinstance(reward_min, Mapping):
        unknown = sorted(set(reward_min) - set(names))
        if unknown:
            raise ValueError(f"reward_min names unknown reward functions {unknown}; the reward functions are "
                             f"{list(names)}")
        out = [reward_min.get(n, m) for n, m in zip(names, out)]
    elif reward_min is not None:
        values = list(reward_min)
        if len(values) != len(names):
            raise ValueError(f"reward_min has {len(values)} entries but there are {len(names)} reward functions "
                             f"{list(names)}")
        out = values
    resolved = [None if m is None else float(m) for m in out]
    bad = [n for n, m in zip(names, resolved) if m is not None and not math.isfinite(m)]
    if bad:
        raise ValueError(f"reward_min of {bad} is not finite")
    return resolved


# ----------------------------------------------------------------------------- correspondence
def compute_advantages_options(aggregation: str, scale_rewards: str | bool = "group") -> dict[str, Any]:
    """The ``compute_advantages`` options that reproduce TRL's advantages for a GRPOConfig's
    ``multi_objective_aggregation`` and ``scale_rewards`` (module docstring): estimator, eps, whiten.

    Raises ValueError for ``scale_rewards="batch"`` with sum_then_normalize (no estimator here).
    """
    scale = {True: "group", False: "none"}.get(scale_rewards, scale_rewards)  # as GRPOConfig does
    if aggregation == "normalize_then_sum":
        return {"estimator": "gdpo", "eps": TRL_EPS, "whiten": "sequence"}
    if aggregation == "sum_then_normalize":
        if scale == "group":
            return {"estimator": "grpo", "eps": TRL_EPS, "whiten": "none"}
        if scale == "none":
            return {"estimator": "grpo_nostd", "eps": TRL_EPS, "whiten": "none"}
        raise ValueError(f"scale_rewards={scale_rewards!r} (batch std after the group mean) has no estimator in "
                         "this repo; the plug-in still applies its weights")
    raise ValueError(f"unknown multi_objective_aggregation {aggregation!r}; valid: {', '.join(AGGREGATIONS)}")


# ----------------------------------------------------------------------------- the plug-in
def _check_trl_hook() -> None:
    """The private method the plug-in overrides still exists with the signature of trl==1.16.0."""
    hook = getattr(GRPOTrainer, "_calculate_rewards", None)
    params = list(inspect.signature(hook).parameters) if hook is not None else None
    if params != _HOOK_PARAMS:
        raise RuntimeError(
            f"saw.integrations.trl overrides GRPOTrainer._calculate_rewards{tuple(_HOOK_PARAMS[1:])}, but trl "
            f"{getattr(trl, '__version__', 'unknown')} has {params}; install trl=={TRL_VERSION} (pip install .[trl])")


def _check_weighting(weighting: str | Weighting) -> None:
    """Fail before TRL loads anything: unknown names, weightings this plug-in cannot feed."""
    if isinstance(weighting, Weighting):
        needs = weighting.needs_gradients
        name = weighting.name
    else:
        name = WEIGHTINGS.canonical(weighting)  # unknown names raise, listing the valid ones
        entry = WEIGHTINGS.get(name)
        needs = bool(getattr(entry, "needs_gradients", False)) if isinstance(entry, type) else False
    if needs:
        usable = [n for n in WEIGHTINGS.names() if not getattr(WEIGHTINGS.get(n), "needs_gradients", False)]
        raise ValueError(f"weighting {name!r} needs per-objective policy gradients, which the TRL plug-in does not "
                         f"compute; use this repo's trainer (scripts/train.py) or one of the weightings {usable}")


def _early_names(funcs: Any) -> list[str] | None:
    """TRL's reward-function names, when all are plain callables (None otherwise: checked after init)."""
    if funcs is None:
        return None
    funcs = funcs if isinstance(funcs, list) else [funcs]
    if any(isinstance(f, (str, torch.nn.Module)) or not callable(f) for f in funcs):
        return None
    return [get_callable_name(f) for f in funcs]


class RewardWeightingMixin:
    """Weights a ``GRPOTrainer``'s rewards with a registered weighting of this repo each step.

    Put it before ``GRPOTrainer`` (or a subclass of it) in the bases:
    ``class MyTrainer(RewardWeightingMixin, GRPOTrainer)``. Extra keyword arguments:

    - ``weighting``: a name in ``saw.algo.WEIGHTINGS`` ("saw", "static", ...) or a ``Weighting``;
    - ``reward_min``: each reward's theoretical minimum, a mapping by reward-function name or a
      sequence in their order (else the functions' ``reward_min`` attributes);
    - ``weighting_options``: options for ``build_weighting``; ``delta``: SAW's delta (1e-8).

    Attributes: ``weighting`` (the Weighting), ``reward_priorities`` Tensor[K] (the config's
    ``reward_weights``, alpha), ``reward_min`` (list, None = undeclared), ``last_weighting``
    (cv and weights of the latest step).
    """

    def __init__(self, *args: Any, weighting: str | Weighting = "saw",
                 reward_min: Mapping[str, float] | Sequence[float] | None = None,
                 weighting_options: Mapping[str, Any] | None = None, delta: float = 1e-8, **kwargs: Any):
        _check_trl_hook()
        _check_weighting(weighting)
        funcs = kwargs.get("reward_funcs", args[1] if len(args) > 1 else None)
        names = _early_names(funcs)
        needs_min = (weighting.needs_reward_min if isinstance(weighting, Weighting)
                     else bool(WEIGHTINGS.meta(WEIGHTINGS.canonical(weighting)).get("needs_reward_min")))
        if names is not None and not kwargs.get("environment_factory"):
            self._require_mins(names, _resolve_reward_min(names, funcs if isinstance(funcs, list) else [funcs],
                                                          reward_min), needs_min, weighting)
        super().__init__(*args, **kwargs)
        names = list(self.reward_func_names)  # TRL's, environment rewards included
        self.weighting = build_weighting(weighting, len(names), **dict(weighting_options or {}))
        if self.weighting.num_rewards != len(names):
            raise ValueError(f"weighting {self.weighting.name!r} was built for K={self.weighting.num_rewards} rewards; "
                             f"the trainer has K={len(names)}: {names}")
        self.reward_min = _resolve_reward_min(names, self.reward_funcs, reward_min)
        self._require_mins(names, self.reward_min, self.weighting.needs_reward_min, self.weighting.name)
        if self.multi_objective_aggregation not in AGGREGATIONS:
            raise ValueError(f"unknown multi_objective_aggregation {self.multi_objective_aggregation!r}; "
                             f"valid: {', '.join(AGGREGATIONS)}")
        self.reward_priorities = self.reward_weights.detach().to("cpu", torch.float64).clone()
        if not torch.all(torch.isfinite(self.reward_priorities)):
            raise ValueError(f"reward_weights must be finite, got {self.reward_priorities.tolist()}")
        self.weighting_delta = float(delta)
        self.last_weighting: dict[str, Tensor] = {}

    @staticmethod
    def _require_mins(names: Sequence[str], mins: Sequence[float | None], needed: bool, weighting: Any) -> None:
        missing = [n for n, m in zip(names, mins) if m is None]
        if needed and missing:
            name = weighting.name if isinstance(weighting, Weighting) else weighting
            raise ValueError(
                f"weighting {name!r} needs each reward's theoretical minimum; none declared for {missing}: pass "
                f"reward_min={{{', '.join(repr(n) + ': ...' for n in missing)}}} or decorate the functions with "
                "@declare_reward_min(value)")

    # -------------------------------------------------------------- the weights of one step
    @torch.no_grad()
    def weigh_rewards(self, rewards_per_func: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Coefficients Tensor[K] (float64) for the gathered reward matrix [N, K], and the weighting's
        info ("cv", ...). As ``compute_advantages``: normalised weightings are multiplied by K on
        TRL's normalize_then_sum host (their weights sum to one, plain GDPO's to K)."""
        r = rewards_per_func.detach().to("cpu", torch.float64)
        k = r.shape[1]
        col_min = torch.nan_to_num(r, nan=float("inf")).min(dim=0).values
        batch_min = torch.where(torch.isfinite(col_min), col_min, torch.zeros_like(col_min))
        rmin = torch.tensor([float(batch_min[j]) if m is None else m for j, m in enumerate(self.reward_min)],
                            dtype=torch.float64)
        w, info = self.weighting(r, reward_min=rmin, priorities=self.reward_priorities, delta=self.weighting_delta)
        w = w.to(torch.float64)
        per_reward = self.multi_objective_aggregation == "normalize_then_sum"  # the GDPO host
        coeffs = w * k if (per_reward and self.weighting.normalized) else w
        if not torch.all(torch.isfinite(coeffs)):
            raise FloatingPointError(f"weighting {self.weighting.name!r} gave non-finite weights {coeffs.tolist()}")
        return coeffs, info

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        """TRL's rewards (gathered over all processes), then this step's weights into
        ``self.reward_weights``, which TRL's aggregation reads next (private hook of trl==1.16.0)."""
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        coeffs, info = self.weigh_rewards(rewards_per_func)
        self.reward_weights = coeffs.to(torch.float32)
        mode = "train" if self.model.training else "eval"
        cv = info.get("cv")
        for j, name in enumerate(self.reward_func_names):
            if cv is not None:
                self._metrics[mode][f"reward/{name}/cv"].append(float(cv[j]))
            self._metrics[mode][f"reward/{name}/weight"].append(float(coeffs[j]))
        self.last_weighting = {**{key: v.detach().to("cpu") for key, v in info.items()}, "weights": coeffs}
        return rewards_per_func


class SAWGRPOTrainer(RewardWeightingMixin, GRPOTrainer):
    """TRL's ``GRPOTrainer`` whose rewards are weighted by SAW (default) or any registered weighting
    each step; see :class:`RewardWeightingMixin` for the extra arguments."""
