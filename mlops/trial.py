"""Reading what a finished launch of a trial left in its folder, the same way for every runtime."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops.domain import EndReason, TrialStatus
from mlops.runtime.base import Outcome
from mlops_harness.protocol import LOG_FILE, METRICS_FILE, OUTCOME_FILE, ExitCode, read_json, read_plain


@dataclass(frozen=True)
class LaunchResult:
    """What one launch produced: a metric, or why not."""

    status: TrialStatus
    outcome: Outcome
    metric_name: str | None = None
    metric: float | None = None
    metric_source: str | None = None
    epochs: int | None = None
    error: str | None = None
    error_file: str | None = None
    error_line: int | None = None
    traceback: str | None = None

    @property
    def fingerprint(self) -> str:
        """Two failures with the same fingerprint failed the same way (the same traceback)."""
        if self.traceback:
            return self.traceback
        return f"{self.outcome.reason}:{self.error or ''}"

    @property
    def own_fault(self) -> bool:
        """The user's code decided this end (it raised, found no metric, hit a limit), not a crash."""
        return not self.outcome.reason.is_crash()


def tail(path: Path, lines: int = 20) -> str:
    try:
        text = read_plain(path)
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def read_result(
    trial_dir: Path, outcome: Outcome, redact: Callable[[str], str] = lambda text: text
) -> LaunchResult:
    """What the launch left; every text from the trial (its error, traceback, last line) passes ``redact``."""
    metrics: dict[str, Any] = read_json(trial_dir / METRICS_FILE) or {}
    report: dict[str, Any] = {
        key: redact(value) if isinstance(value, str) else value
        for key, value in (read_json(trial_dir / OUTCOME_FILE) or {}).items()
    }
    epochs = metrics.get("epochs")
    if outcome.ok and "value" in metrics:
        return LaunchResult(
            TrialStatus.SUCCEEDED,
            outcome,
            metrics.get("metric"),
            float(metrics["value"]),
            metrics.get("source"),
            epochs,
        )
    if outcome.reason is EndReason.EXITED and outcome.exit_code in (
        ExitCode.SCRIPT_ERROR,
        ExitCode.NO_METRIC,
    ):
        return LaunchResult(
            TrialStatus.FAILED,
            outcome,
            epochs=epochs,
            error=report.get("error") or f"the script failed ({outcome.describe()})",
            error_file=report.get("file"),
            error_line=report.get("line"),
            traceback=report.get("traceback"),
        )
    if outcome.reason is EndReason.EXITED and outcome.exit_code == ExitCode.OK:
        return LaunchResult(TrialStatus.FAILED, outcome, epochs=epochs, error="the harness wrote no metrics")
    last = redact(tail(trial_dir / LOG_FILE, 3)).strip().splitlines()
    hint = f" (last output: {last[-1][:200]})" if last and outcome.reason is EndReason.EXITED else ""
    return LaunchResult(
        TrialStatus.FAILED, outcome, epochs=epochs, error=f"the training {outcome.describe()}{hint}"
    )
