"""When a run stops: each condition a callback like optuna's ``MaxTrialsCallback``, a pure function of the
run, its trials and its budget."""

from __future__ import annotations

import time
from dataclasses import dataclass

from mlops.domain import RunStatus, TrialStatus
from mlops.ledger import RunRecord, TrialRecord
from mlops.trial import NO_TWEAK_FIXES
from tweak import direction

FAILURES_IN_A_ROW = 3


@dataclass(frozen=True)
class Budget:
    target: float
    max_trials: int
    max_minutes: float | None
    parallel: int = 1


def as_pushed_cannot_run(first: TrialRecord) -> str | None:
    """Why no tweak of the model can make trial 0 (the code as pushed) run, when it failed so; else None.
    The run then ends there, and no tuning trial is proposed to fail the same way."""
    if first.status is not TrialStatus.FAILED:
        return None
    error = first.error or ""
    if first.error_line and first.error_type == "SyntaxError":
        return f"the code as pushed does not parse: {error}"
    hint = f"; {first.hint}" if first.hint else ""
    if first.error_type == "NameError":  # a fragment's imports, a notebook's cells: no tweak defines them
        return f"the code as pushed uses a name it never defines: {error}{hint}"
    if (
        first.failure_class in NO_TWEAK_FIXES
    ):  # a missing module, old library code, data, a download, a prompt
        where = f" ({first.error_file}:{first.error_line})" if first.error_line else ""
        return f"the code as pushed cannot run here [{first.failure_class}]: {first.error}{where}{hint}"
    return None


def _last_failure(done: list[TrialRecord]) -> str:
    """What the last finished trial failed of, as the run's reason says it."""
    last = done[-1]
    what = f"[{last.failure_class}] {last.error}" if last.failure_class else (last.error or last.status.value)
    return f"trial {last.number}: {what}"


def stop_reason(run: RunRecord, trials: list[TrialRecord], budget: Budget) -> tuple[RunStatus, str] | None:
    done = [t for t in trials if t.status.is_finished()]
    scored = [t for t in done if t.metric is not None and t.status is TrialStatus.SUCCEEDED]
    best = direction.best_of(scored)
    best_metric = best.metric if best is not None else None
    lower = direction.run_lower_is_better(scored)
    if best is not None and best_metric is not None and direction.reached(best_metric, budget.target, lower):
        return RunStatus.REACHED, (
            f"trial {best.number} reached {best_metric:.4f} {direction.compared(lower)} target {budget.target:g}"
        )
    broken = as_pushed_cannot_run(trials[0]) if trials else None
    if broken is not None:
        return RunStatus.FAILED, broken
    tail = done[-FAILURES_IN_A_ROW:]
    if len(tail) == FAILURES_IN_A_ROW and all(t.status is TrialStatus.FAILED for t in tail) and not scored:
        return RunStatus.FAILED, (
            f"{FAILURES_IN_A_ROW} trials failed in a row and none produced a metric ({_last_failure(done)})"
        )
    if len(trials) >= budget.max_trials and not scored and done:
        return RunStatus.FAILED, f"no trial produced a metric ({_last_failure(done)})"
    if len(trials) >= budget.max_trials:
        what = f"best {best_metric:.4f}" if best_metric is not None else "no metric"
        return (
            RunStatus.EXHAUSTED,
            f"{budget.max_trials} trials used, {what}, target {budget.target:g} not reached",
        )
    if budget.max_minutes is not None and time.time() - run.created_at > budget.max_minutes * 60:
        return RunStatus.EXHAUSTED, f"the wall-time budget of {budget.max_minutes:g} min is used"
    return None
