"""The reward contract: a named, bounded, batch scorer that never raises on model output.

A reward subclass implements ``_score_one`` (or ``_score_batch`` for vectorised scoring);
``__call__`` wraps it so that every completion gets a float in [min, max] (or NaN for "not
applicable"), whatever the model wrote. Completions the scorer failed on (scored ``min``) are
counted; the trainer logs the count of each step as ``reward/<name>/failures``
(:meth:`Reward.take_failures`), and scores outside the declared range (clipped) as
``reward/<name>/clipped``. Every reward declares its range (class attributes ``min``/``max``, or
``min``/``max`` in its config entry): there is no default.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Sequence

from saw.core.registry import Registry

log = logging.getLogger(__name__)

REWARDS: Registry = Registry("reward")


class Reward:
    """Base class. Subclasses set ``name``, ``min``, ``max`` and implement a scorer."""

    name: str = "reward"
    min: float | None = None  # every reward declares its range: class attributes, or min/max in its config
    max: float | None = None

    def __init__(self, **config: Any):
        self.config = config
        self.failures = 0
        self.clipped = 0

    def check_range(self) -> None:
        """Raise ValueError unless the reward declares a finite range min < max (SAW shifts each
        reward by its minimum, so a guessed range changes the weights)."""
        lo, hi = self.min, self.max
        if lo is None or hi is None:
            raise ValueError(f"reward {self.name!r} ({type(self).__name__}) declares no range: set the class "
                             "attributes min and max, or give min/max in its config entry "
                             f"(e.g. {{name: {self.name}, min: -1.0, max: 1.0}})")
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"reward {self.name!r} has an invalid range [{lo}, {hi}]: need finite min < max")

    # ------------------------------------------------------------------ to implement
    def _score_one(self, completion: str, record: dict) -> float:  # pragma: no cover
        raise NotImplementedError

    def _score_batch(self, completions: Sequence[str], records: Sequence[dict]) -> list[float]:
        return [self._safe_one(c, r) for c, r in zip(completions, records)]

    # ------------------------------------------------------------------ contract
    def _safe_one(self, completion: str, record: dict) -> float:
        try:
            return self._score_one(completion if isinstance(completion, str) else str(completion), record)
        except Exception as exc:  # model output must never stop training
            self.failures += 1
            log.debug("reward %s failed on one completion: %r", self.name, exc)
            return self.min

    def clip(self, value: Any) -> float:
        """Coerce ``value`` into [min, max]; None/NaN stay NaN ("not applicable")."""
        try:
            v = float(value)
        except (TypeError, ValueError, OverflowError):
            self.failures += 1
            return self.min
        if math.isnan(v):
            return float("nan")
        if v < self.min or v > self.max:
            self.clipped += 1
            return min(max(v, self.min), self.max)
        return v

    def __call__(self, completions: Sequence[str], records: Sequence[dict]) -> list[float]:
        """Score completions[i] against records[i]; returns len(completions) floats."""
        self.check_range()
        if len(completions) != len(records):
            raise ValueError(f"{self.name}: {len(completions)} completions but {len(records)} records")
        try:
            values = self._score_batch(list(completions), list(records))
        except Exception as exc:
            log.warning("reward %s batch scoring failed (%r); falling back to one by one", self.name, exc)
            values = [self._safe_one(c, r) for c, r in zip(completions, records)]
        return [self.clip(v) for v in values]

    def check_record(self, record: Any) -> None:
        """Raise ValueError when a dataset record cannot be scored by this reward (e.g. a missing or
        malformed ground truth): a data error, found before training instead of at the step that
        samples the record. Model output is never checked here."""

    def preflight(self) -> None:
        """Check, before any model loads, that the reward can score (e.g. its server answers);
        raise with what to fix. Rule-based rewards have nothing to check."""

    def take_failures(self) -> int:
        """Failures since the last call (and reset the count): one per completion scored ``min``
        because the scorer raised or returned a non-number."""
        count, self.failures = self.failures, 0
        return count

    def take_clipped(self) -> int:
        """Scores outside [min, max] since the last call (and reset the count): each was clipped."""
        count, self.clipped = self.clipped, 0
        return count

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, range=[{self.min}, {self.max}])"


def split_bad_records(rewards: Sequence[Reward], records: Sequence[dict]) -> tuple[list[dict], list[tuple[str, str]]]:
    """(records every reward can score, [(record id, error), ...] for the others)."""
    good, bad = [], []
    for i, record in enumerate(records):
        try:
            for reward in rewards:
                reward.check_record(record)
        except ValueError as exc:
            bad.append((str(record.get("id", i)) if isinstance(record, dict) else str(i), str(exc)))
        else:
            good.append(record)
    return good, bad


def build_reward(name: str, **kwargs: Any) -> Reward:
    """Build a registered reward by name (unknown names list the valid ones). ``min``/``max`` in
    ``kwargs`` set (or override) its declared range; a reward without one is refused."""
    cls = REWARDS.get(name)  # importing rewards.base ran rewards/__init__, which registers the built-ins
    bounds = {key: float(kwargs.pop(key)) for key in ("min", "max") if kwargs.get(key) is not None}
    reward = cls(**kwargs)
    for key, value in bounds.items():
        setattr(reward, key, value)
    reward.check_range()
    return reward


def build_rewards(specs: Sequence[Any]) -> list[Reward]:
    """Build rewards from config entries: a name, or a mapping with ``name`` and kwargs."""
    out = []
    for spec in specs:
        if isinstance(spec, str):
            out.append(build_reward(spec))
        else:
            spec = dict(spec)
            name = spec.pop("name", None)
            if name is None:
                raise ValueError(f"reward config entry {spec!r} has no 'name'")
            out.append(build_reward(name, **spec))
    return out
