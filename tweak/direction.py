"""Which way a run's metric is better: an accuracy, an R², a silhouette up; a loss down.

A script that measures only its loss (a regression's MSE printed, torchmetrics' ``MeanSquaredError``,
Lightning's ``test_loss``) has a trial metric named ``loss`` (the harness also writes ``lower_is_better``
in its ``metrics.json``). The run's target is then the loss to get under, the best trial is the lowest,
and the strategies minimize it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar

# The metric names of the harness (mlops_harness/metrics.py) whose lower value is the better one.
LOWER_IS_BETTER = frozenset({"loss"})


class Scored(Protocol):
    @property
    def metric(self) -> float | None: ...

    @property
    def metric_name(self) -> str | None: ...

    @property
    def number(self) -> int: ...


T = TypeVar("T", bound=Scored)


def lower_is_better(metric_name: str | None) -> bool:
    return metric_name in LOWER_IS_BETTER


def run_lower_is_better(trials: Iterable[Scored]) -> bool:
    """Whether the run's metric is a loss: what its first measured trial measured (one script, one kind)."""
    for trial in trials:
        if trial.metric is not None:
            return lower_is_better(trial.metric_name)
    return False


def reached(metric: float, target: float, lower: bool) -> bool:
    return metric <= target if lower else metric >= target


def best_of(trials: Iterable[T]) -> T | None:
    """The best measured trial (the earliest on a tie), in the run's direction."""
    scored = [t for t in trials if t.metric is not None]
    sign = -1.0 if run_lower_is_better(scored) else 1.0
    return max(scored, key=lambda t: (sign * (t.metric or 0.0), -t.number), default=None)


def compared(lower: bool) -> str:
    """The comparison a target is reached by, for messages."""
    return "<=" if lower else ">="
