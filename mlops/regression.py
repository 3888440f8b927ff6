"""Regressions said: a run against its script's previous commit.

A run's trial 0 (the code as pushed) is compared with the previous commit's trial 0, and its best with the
previous best (the previous commit: ``mlops.lineage.previous_run``). A drop by more than the tolerance (the
setting ``regression_tolerance``, recorded in the run's settings when it was made) is a regression; a rise
by more than it an improvement; for a loss, lower is better. The comparison is computed from the ledger, a
typed value (:class:`Comparison`), never parsed from a run's text.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from mlops.ledger import Ledger, RunRecord
from mlops.lineage import previous_run

LOWER_IS_BETTER = frozenset({"loss"})


class Change(enum.StrEnum):
    REGRESSION = "regression"
    IMPROVEMENT = "improvement"
    SAME = "same"  # within the tolerance, or nothing to compare (a side without a metric)


@dataclass(frozen=True)
class Delta:
    """One figure before (the previous commit) and after (this run)."""

    before: float | None
    after: float | None
    change: Change

    def text(self) -> str:
        def fmt(value: float | None) -> str:
            return f"{value:.4f}" if value is not None else "none"

        return f"{fmt(self.before)} -> {fmt(self.after)}"


@dataclass(frozen=True)
class Comparison:
    """A run against the run of its script's previous commit."""

    run: str
    previous: str
    previous_commit: str
    metric: str
    lower_is_better: bool
    tolerance: float
    as_pushed: Delta  # trial 0 against trial 0
    best: Delta  # the best trial against the best trial

    @property
    def change(self) -> Change:
        """A regression when either figure dropped; else an improvement when either rose; else the same."""
        changes = (self.as_pushed.change, self.best.change)
        for change in (Change.REGRESSION, Change.IMPROVEMENT):
            if change in changes:
                return change
        return Change.SAME

    @property
    def regressed(self) -> bool:
        return self.change is Change.REGRESSION

    def sentence(self) -> str:
        """``regression against run 1-cnn (commit 3f2a91c): accuracy as pushed 0.91 -> 0.80, best ...``."""
        head = {
            Change.REGRESSION: "regression",
            Change.IMPROVEMENT: "improvement",
            Change.SAME: "no change beyond the tolerance",
        }[self.change]
        return (
            f"{head} against run {self.previous} (commit {self.previous_commit[:7]}): {self.metric} "
            f"as pushed {self.as_pushed.text()}, best {self.best.text()} (tolerance {self.tolerance:g}"
            + (", lower is better)" if self.lower_is_better else ")")
        )

    def to_json(self) -> dict[str, Any]:
        """What ``mlops history --json`` says of a regression: both figures, before and after."""
        return {
            "previous": self.previous,
            "metric": self.metric,
            "lower_is_better": self.lower_is_better,
            "tolerance": self.tolerance,
            "as_pushed": {"before": self.as_pushed.before, "after": self.as_pushed.after},
            "best": {"before": self.best.before, "after": self.best.after},
            "change": self.change.value,
        }


def tolerance_of(run: RunRecord) -> float:
    """The tolerance the run was made with (a run from before the setting: the default)."""
    return run.settings.regression_tolerance


def compare(ledger: Ledger, run: RunRecord) -> Comparison | None:
    """The run against its script's previous commit; None for a script's first commit, or when the two
    runs measured different metrics (no comparison means anything then)."""
    before = previous_run(ledger, run)
    if before is None:
        return None
    metric = run.metric or before.metric
    if before.metric and run.metric and before.metric != run.metric:
        return None
    lower = (metric or "") in LOWER_IS_BETTER
    tolerance = tolerance_of(run)

    def delta(old: float | None, new: float | None) -> Delta:
        return Delta(old, new, _change(old, new, tolerance, lower))

    return Comparison(
        run=run.id,
        previous=before.id,
        previous_commit=before.commit,
        metric=metric or "metric",
        lower_is_better=lower,
        tolerance=tolerance,
        as_pushed=delta(_as_pushed(ledger, before), _as_pushed(ledger, run)),
        best=delta(before.best_metric, run.best_metric),
    )


def regression_json(comparison: Comparison | None) -> dict[str, Any] | None:
    """``regression`` in ``mlops history --json``: null unless the drop is beyond the tolerance."""
    return comparison.to_json() if comparison is not None and comparison.regressed else None


def _as_pushed(ledger: Ledger, run: RunRecord) -> float | None:
    if run.baseline_metric is not None:
        return run.baseline_metric
    first = next((t for t in ledger.trials(run.id) if t.number == 0), None)
    return first.metric if first is not None else None


def _change(before: float | None, after: float | None, tolerance: float, lower: bool) -> Change:
    if before is None or after is None:
        return Change.SAME
    gain = (before - after) if lower else (after - before)
    if gain < -tolerance:
        return Change.REGRESSION
    if gain > tolerance:
        return Change.IMPROVEMENT
    return Change.SAME
