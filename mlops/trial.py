"""Reading what a finished launch of a trial left in its folder, the same way for every runtime: through
the one reader (:mod:`mlops.trial_records`), so what the trial left that is not what the protocol says is
that trial's failure, never mlops's."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlops import trial_files
from mlops.domain import EndReason, TrialStatus
from mlops.last_measured import measured_before_end
from mlops.runtime.base import Outcome
from mlops.trial_files import BadTrialFile
from mlops.trial_records import HarnessOutcome, Metrics, read_left
from mlops_harness.protocol import LOG_FILE, ExitCode, FailureClass

# Only these ends are worth a restart: the training itself may well succeed next time.
RESTARTED = frozenset({FailureClass.CRASH, FailureClass.OOM})
# A trial 0 that fails so cannot be fixed by any tweak of the model: the run stops there.
NO_TWEAK_FIXES = frozenset(
    {FailureClass.ENVIRONMENT, FailureClass.API, FailureClass.DATA, FailureClass.DOWNLOAD, FailureClass.INPUT}
)
END_CLASSES = {
    EndReason.TIMEOUT: (FailureClass.TIMEOUT, "raise --timeout, or fewer epochs"),
    EndReason.OOM: (FailureClass.OOM, "raise --memory, or a smaller model or batch"),
    EndReason.DISK: (
        FailureClass.DISK,
        "raise --disk (MB) or --disk-files, or write less into the trial's folder",
    ),
    EndReason.SIGNAL: (FailureClass.CRASH, "killed from outside; restarted from its checkpoint"),
    EndReason.LOST: (FailureClass.CRASH, "the process or container went away; restarted from its checkpoint"),
}
# Ends from outside after which a metric the script had measured stands (a kill that is restarted
# measures again: its metric is kept only when the restarts are given up, see ``kept``).
KEPT_AFTER = frozenset({EndReason.TIMEOUT, EndReason.OOM, EndReason.DISK})


@dataclass(frozen=True)
class LaunchResult:
    """What one launch produced: a metric, or why not (its failure class and a hint)."""

    status: TrialStatus
    outcome: Outcome
    metric_name: str | None = None
    metric: float | None = None
    metric_source: str | None = None
    epochs: int | None = None
    error: str | None = None
    error_file: str | None = None
    error_line: int | None = None
    error_type: str | None = None  # the exception's class name, as the harness reported it
    traceback: str | None = None
    failure: FailureClass | None = None
    hint: str | None = None
    warning: str | None = None  # the trial succeeded, but the script failed after its metric was measured


def tail(folder: Path, name: str = LOG_FILE, lines: int = 20) -> str:
    """The last lines of a log in a trial's folder ("" when there is none, or it is not a plain file)."""
    return trial_files.tail(folder, name, lines)


def _failure(name: str | None) -> FailureClass:
    try:
        return FailureClass(name or FailureClass.CODE)
    except ValueError:
        return FailureClass.CODE


def read_result(
    trial_dir: Path, outcome: Outcome, redact: Callable[[str], str] = lambda text: text
) -> LaunchResult:
    """What the launch left; every text from the trial (its error, traceback, hint, last line) passes
    ``redact``. What the trial left that is not what the protocol says (a link, a record of the wrong type)
    is the trial's failure, said as such."""
    try:
        left = read_left(trial_dir)
    except BadTrialFile as e:
        return LaunchResult(
            TrialStatus.FAILED, outcome, error=redact(str(e)), failure=FailureClass.CODE, hint=e.hint
        )
    metrics = left.metrics or Metrics()
    report = left.outcome or HarnessOutcome()
    if outcome.ok and metrics.value is not None:
        return _succeeded(outcome, metrics, report, redact)
    epochs = metrics.epochs
    if outcome.reason is EndReason.EXITED and outcome.exit_code in (
        ExitCode.SCRIPT_ERROR,
        ExitCode.NO_METRIC,
    ):
        return _script_failed(outcome, epochs, report, redact)
    if outcome.reason is EndReason.EXITED:
        code = FailureClass.CODE
        if outcome.exit_code == ExitCode.OK:
            return LaunchResult(
                TrialStatus.FAILED, outcome, epochs=epochs, error="the harness wrote no metrics", failure=code
            )
        last = redact(tail(trial_dir, LOG_FILE, 3)).strip().splitlines()
        said = f" (last output: {last[-1][:200]})" if last else ""
        return LaunchResult(
            TrialStatus.FAILED,
            outcome,
            epochs=epochs,
            error=f"the training {outcome.describe()}{said}",
            failure=code,
        )
    return _ended_from_outside(trial_dir, outcome, epochs)


def _ended_from_outside(trial_dir: Path, outcome: Outcome, epochs: int | None) -> LaunchResult:
    """A launch stopped from outside (its time, memory or disk, a kill): a failure of its class, or a
    success with the metric the script measured before (see ``kept``)."""
    cls, hint = END_CLASSES[outcome.reason]
    failed = LaunchResult(
        TrialStatus.FAILED,
        outcome,
        epochs=epochs,
        error=f"the training {outcome.describe()}",
        failure=cls,
        hint=hint,
    )
    return kept(trial_dir, failed) if outcome.reason in KEPT_AFTER else failed


def kept(trial_dir: Path, result: LaunchResult) -> LaunchResult:
    """A launch ended from outside after the script measured its model succeeds with that metric,
    labelled (as a failure after the metric is, see the harness); any other result is returned as it is."""
    measured = measured_before_end(trial_dir) if result.status is TrialStatus.FAILED else None
    if measured is None or result.failure is None:
        return result
    end = result.outcome.reason.value
    return LaunchResult(
        TrialStatus.SUCCEEDED,
        result.outcome,
        measured.name,
        measured.value,
        f"{measured.source}, before the {end}",
        result.epochs,
        warning=f"the script measured {measured.name} {measured.value:.4f} ({measured.source}), then the "
        f"training {result.outcome.describe()}: that last measure is kept, labelled '{end}'",
    )


def _script_failed(
    outcome: Outcome, epochs: int | None, report: HarnessOutcome, redact: Callable[[str], str]
) -> LaunchResult:
    """The script raised, or ended without a metric: what the harness said of it."""
    no_metric = outcome.exit_code == ExitCode.NO_METRIC
    return LaunchResult(
        TrialStatus.FAILED,
        outcome,
        epochs=epochs,
        error=redact(report.error or f"the script failed ({outcome.describe()})"),
        error_file=redact(report.file) if report.file else None,
        error_line=report.line,
        error_type=report.error_type,
        traceback=redact(report.traceback) if report.traceback else None,
        failure=FailureClass.CODE if no_metric else _failure(report.failure_class),
        hint=(
            "measure the model with evaluate(), score() or accuracy_score(), or write accuracy.txt"
            if no_metric
            else redact(report.hint)
            if report.hint
            else None
        ),
    )


def _succeeded(
    outcome: Outcome, metrics: Metrics, report: HarnessOutcome, redact: Callable[[str], str]
) -> LaunchResult:
    after = report.failed_after_metric
    warning = None
    if after is not None:
        where = f" at {after.file}:{after.line}" if after.line else ""
        warning = redact(f"after the metric, the script failed{where}: {after.error}")
    return LaunchResult(
        TrialStatus.SUCCEEDED,
        outcome,
        metrics.metric,
        metrics.value,
        redact(metrics.source) if metrics.source else None,
        metrics.epochs,
        warning=warning,
    )
