"""What an earlier commit's trials (warm start, tweak/warm.py) give a strategy: the coordinates that still
lie in this source's space, and where the ladder stands."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def ladder_from(number: int, earlier: Sequence[Any]) -> int:
    """The ladder's step for trial ``number``: its number, or past the step of the best earlier trial
    (``earlier``: the strategy's ``Past`` records of an earlier commit's run)."""
    ranked = sorted(earlier, key=lambda p: p.metric if p.metric is not None else float("-inf"))
    step = ranked[-1].params.get("step") if ranked else None
    return max(number, step + 1) if isinstance(step, int) else number


def fits(dist: Any, value: Any) -> bool:
    """Whether a coordinate (an earlier commit's, whose space may differ) lies in this space's range."""
    import optuna.distributions as d

    if isinstance(dist, d.CategoricalDistribution):
        return value in dist.choices
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(dist, d.IntDistribution) and not float(value).is_integer():
        return False
    return bool(dist.low <= value <= dist.high)
