"""Job 6: watch a training, and start it again when it dies, from its last checkpoint.

A launch that ends by a crash (killed from outside, the engine restarted, the process vanished) is
started again after an exponential backoff, up to a limit; the harness's backup-and-restore callback makes
it resume at the epoch where it stopped. A launch that fails from its own code is tried once more; when it
fails the same way twice (the same traceback) it is a bug, not a crash: the trial is marked failed.

Pruning follows the harness's structured events (``events.jsonl`` in the trial folder, see
``mlops_harness.protocol``), never its human log lines.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops.domain import TrialStatus
from mlops.ledger import Ledger, RunRecord, TrialRecord
from mlops.progress import Progress
from mlops.runtime.base import Runtime, TrialSpec, follow_file
from mlops.trial import LaunchResult, read_result
from mlops_harness.protocol import EVENTS_FILE, Event, EventKind, decode_events


class Action(enum.Enum):
    FINISH = "finish"
    RESTART = "restart"
    GIVE_UP = "give-up"


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    delay_s: float = 0.0


@dataclass(frozen=True)
class RestartPolicy:
    """When to start a dead training again. A pure function of what happened so far."""

    max_restarts: int = 3
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0

    def decide(self, result: LaunchResult, earlier: list[LaunchResult], restarts: int) -> Decision:
        if result.status is TrialStatus.SUCCEEDED:
            return Decision(Action.FINISH, "produced its metric")
        if (
            result.own_fault
            and earlier
            and earlier[-1].own_fault
            and earlier[-1].fingerprint == result.fingerprint
        ):
            return Decision(Action.FINISH, "failed the same way twice: a bug in the script, not a crash")
        if restarts >= self.max_restarts:
            return Decision(Action.GIVE_UP, f"still failing after {restarts} restarts")
        delay = min(self.max_delay_s, self.base_delay_s * (2**restarts))
        return Decision(Action.RESTART, result.error or result.outcome.describe(), delay)


def epoch_of(event: Event) -> tuple[int, dict[str, float]] | None:
    """An epoch event's epoch (from 1) and its logs; None for any other event."""
    if event.kind is not EventKind.EPOCH:
        return None
    logs = event.get("logs")
    try:
        epoch = int(event.get("epoch"))
        values = {str(k): float(v) for k, v in (logs if isinstance(logs, dict) else {}).items()}
    except (TypeError, ValueError):
        return None
    return epoch, values


def events_size(trial_dir: Path) -> int:
    """Where the events of a launch about to start (or attached to now) begin in the trial's events file."""
    try:
        return (trial_dir / EVENTS_FILE).stat().st_size
    except OSError:
        return 0


# Asked after every epoch with (epoch, logs); True stops the trial as pruned.
PruneCheck = Callable[[int, dict[str, float]], bool]


class Supervisor:
    """Runs one trial to its end on a runtime, restarting it as the policy says."""

    def __init__(
        self, runtime: Runtime[Any], ledger: Ledger, progress: Progress, policy: RestartPolicy
    ) -> None:
        self.runtime = runtime
        self.ledger = ledger
        self.progress = progress
        self.policy = policy

    def execute(
        self, run: RunRecord, trial: TrialRecord, spec: TrialSpec, prune: PruneCheck | None = None
    ) -> TrialRecord:
        handle = None
        restart_reason: str | None = None
        if trial.status is TrialStatus.RUNNING and trial.handle:
            handle = self.runtime.attach(spec, trial.handle)
            if handle is not None:
                self.progress.info(f"   re-attached to {run.id} trial {trial.number}, still training")
            else:
                restart_reason = "its training was gone when mlops came back"
        elif trial.status is TrialStatus.RUNNING:
            restart_reason = "mlops stopped before it started"
        if handle is None and restart_reason is None:
            self.progress.trial_started(run.id, trial.number, trial.changes)

        earlier: list[LaunchResult] = []
        restarts = trial.restarts
        while True:
            events_from = events_size(spec.trial_dir)
            if handle is None:
                handle = self.runtime.run(spec)
                self.ledger.start_trial(
                    run.id,
                    trial.number,
                    handle.data,
                    restart=restart_reason is not None,
                    reason=restart_reason or "",
                )
                if restart_reason is not None:
                    restarts += 1
                    self.progress.trial_started(run.id, trial.number, trial.changes, restart=restart_reason)
            pruned, ended = threading.Event(), threading.Event()
            follower = threading.Thread(target=self._follow, args=(run, trial.number, handle), daemon=True)
            follower.start()
            watcher = None
            if prune is not None:
                watcher = threading.Thread(
                    target=self._watch_epochs,
                    args=(spec.trial_dir / EVENTS_FILE, events_from, handle, prune, pruned, ended),
                    daemon=True,
                )
                watcher.start()
            outcome = self.runtime.wait(handle)
            ended.set()
            follower.join(timeout=10)
            if watcher is not None:
                watcher.join(timeout=10)
            self.runtime.remove(handle)
            handle = None
            result = read_result(spec.trial_dir, outcome, self.progress.redact)

            if pruned.is_set():
                self.ledger.finish_trial(
                    run.id,
                    trial.number,
                    TrialStatus.PRUNED,
                    end_reason=outcome.reason.value,
                    error="stopped early: its epochs were not going to beat the best trial",
                    epochs=result.epochs,
                    duration_s=outcome.duration_s,
                )
                self.progress.trial_finished(run.id, trial.number, "pruned", "stopped early by the strategy")
                return self.ledger.trial(run.id, trial.number)

            decision = self.policy.decide(result, earlier, restarts)
            earlier.append(result)
            if decision.action is Action.RESTART:
                self.ledger.event(
                    run.id,
                    trial.number,
                    "trial-died",
                    f"trial {trial.number} ended: {decision.reason}; restarting in {decision.delay_s:g} s",
                    {"end_reason": outcome.reason.value, "exit_code": outcome.exit_code},
                )
                time.sleep(decision.delay_s)
                restart_reason = decision.reason
                continue
            error = result.error
            if decision.action is Action.GIVE_UP or (
                result.status is TrialStatus.FAILED and len(earlier) > 1
            ):
                error = f"{result.error} ({decision.reason})"
            self.ledger.finish_trial(
                run.id,
                trial.number,
                result.status,
                metric_name=result.metric_name,
                metric=result.metric,
                metric_source=result.metric_source,
                end_reason=outcome.reason.value,
                exit_code=outcome.exit_code,
                error=error,
                error_file=result.error_file,
                error_line=result.error_line,
                epochs=result.epochs,
                duration_s=outcome.duration_s,
            )
            if result.status is TrialStatus.SUCCEEDED:
                self.progress.trial_finished(
                    run.id,
                    trial.number,
                    "succeeded",
                    f"{result.metric_name} {result.metric:.4f} in {outcome.duration_s:.1f} s",
                )
            else:
                where = f" at {result.error_file}:{result.error_line}" if result.error_line else ""
                self.progress.trial_finished(run.id, trial.number, "failed", f"{error}{where}")
            if decision.action is Action.GIVE_UP:
                self.ledger.event(
                    run.id,
                    trial.number,
                    "monitor-gave-up",
                    f"gave up on trial {trial.number}: {decision.reason}",
                )
            return self.ledger.trial(run.id, trial.number)

    def _follow(self, run: RunRecord, number: int, handle: Any) -> None:
        """The training's output, line by line, to the person watching."""
        for line in self.runtime.logs(handle, follow=True):
            self.progress.trial_line(run.id, number, line)

    def _watch_epochs(
        self,
        path: Path,
        start: int,
        handle: Any,
        prune: PruneCheck,
        pruned: threading.Event,
        ended: threading.Event,
    ) -> None:
        """Ask ``prune`` after every epoch the launch records; stop it when the answer is yes.

        Reads the events file from where this launch's events start until the launch has ended (``ended``)
        and the file is drained.
        """
        for event in decode_events(follow_file(path, lambda: not ended.is_set(), start=start)):
            if pruned.is_set():
                continue
            epoch = epoch_of(event)
            if epoch is not None and prune(*epoch):
                pruned.set()
                self.runtime.stop(handle)
