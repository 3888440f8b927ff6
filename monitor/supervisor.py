"""Job 6: watch a training, and start it again when it dies, from its last checkpoint.

A launch that ends by a crash (killed from outside, the engine restarted, the process vanished) is
started again after an exponential backoff, up to a limit; the harness's backup-and-restore callback makes
it resume at the epoch where it stopped. A launch that fails from its own code is tried once more; when it
fails the same way twice (the same traceback) it is a bug, not a crash: the trial is marked failed.

The person watching sees each epoch, and pruning decides on it, from the harness's structured events
(``events.jsonl`` in the trial folder, see ``mlops_harness.protocol``, each checked against its type by
``mlops.trial_records``), never from its human log lines.

A tuning trial whose script failed after the harness stopped one of its fits early is run once more without
the early stop (:meth:`Supervisor.execute_with_plain_retry`): what mlops adds may not make a script fail.
"""

from __future__ import annotations

import enum
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mlops import trial_files, trial_records
from mlops.domain import TrialStatus
from mlops.ledger import Ledger, RunRecord, TrialRecord
from mlops.progress import Progress
from mlops.runtime.base import Runtime, TrialSpec, follow_file
from mlops.trial import RESTARTED, LaunchResult, read_result
from mlops.trial_files import BadTrialFile
from mlops.trial_records import live_events
from mlops.waits import explain_timeout
from mlops_harness.protocol import (
    ENV_PATIENCE,
    ENV_STOP_AT,
    EVENTS_FILE,
    Event,
    EventKind,
    FailureClass,
)

# The variables of the harness's early stop: its patience, and the stop past the target.
EARLY_STOP_ENV = (ENV_PATIENCE, ENV_STOP_AT)
# Failures of the script's own code that a fit stopped early can cause (an index past the end of its history).
AFTER_STOP = frozenset({FailureClass.CODE.value, FailureClass.API.value})


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

    def decide(self, result: LaunchResult, restarts: int) -> Decision:
        if result.status is TrialStatus.SUCCEEDED:
            return Decision(Action.FINISH, "produced its metric")
        if result.failure not in RESTARTED:
            # An exception of the script, a missing module, a timeout: the same code fails the same way.
            what = result.failure.value if result.failure else "failure"
            return Decision(Action.FINISH, f"a {what} failure is not restarted: it would fail the same way")
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
    """Where the events of a launch about to start (or attached to now) begin in the trial's events file
    (0 when there is none, or a link or anything else stands in its place: never followed)."""
    return trial_files.size(trial_dir, EVENTS_FILE)


# Asked after every epoch with (epoch, logs): why to stop the trial as pruned, or None to go on.
PruneCheck = Callable[[int, dict[str, float]], str | None]


class Pruned(threading.Event):
    """Set when the trial was stopped as pruned; ``why`` says what its check said."""

    why = ""


def stopped_early(trial_dir: Path) -> bool:
    """True when the harness stopped a fit of the trial early (a ``stopped`` event, read by the trial reader)."""
    try:
        return any(event.kind is EventKind.STOPPED for event in trial_records.events(trial_dir))
    except BadTrialFile:
        return False


def broke_after_stop(done: TrialRecord, spec: TrialSpec) -> str | None:
    """The error of a trial whose script failed after the harness stopped one of its fits early (failed, or
    failed after its metric was measured), when it ran with the early stop; else None."""
    if not any(name in spec.env for name in EARLY_STOP_ENV) or not stopped_early(spec.trial_dir):
        return None
    if done.status is TrialStatus.FAILED and done.failure_class in AFTER_STOP:
        return done.error or "an error"
    try:
        outcome = trial_records.harness_outcome(spec.trial_dir)
    except BadTrialFile:
        return None
    after = outcome.failed_after_metric if outcome is not None else None
    if done.status is TrialStatus.SUCCEEDED and after is not None:
        return after.error or "an error"
    return None


def set_aside(trial_dir: Path, label: str) -> Path:
    """The folder of an attempt moves to ``<n>.<label>``; the next attempt starts from its inputs (its source,
    params, answers and files of values) as mlops wrote them, read by the trial reader: never a link the
    attempt left (BadTrialFile when one stands in their place)."""
    aside = trial_dir.with_name(f"{trial_dir.name}.{label}")
    trial_files.check_inputs(trial_dir)
    shutil.rmtree(aside, ignore_errors=True)
    trial_dir.rename(aside)
    trial_dir.mkdir()
    trial_files.copy_inputs(aside, trial_dir)
    return aside


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
                self.progress.trial_attached(run.id, trial.number)
            else:
                restart_reason = "its training was gone when mlops came back"
        elif trial.status is TrialStatus.RUNNING:
            restart_reason = "mlops stopped before it started"
        if handle is None and restart_reason is None:
            self.progress.trial_started(run.id, trial.number, trial.changes)

        launches = 0
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
            pruned, ended = Pruned(), threading.Event()
            follower = threading.Thread(target=self._follow, args=(run, trial.number, handle), daemon=True)
            follower.start()
            watcher = threading.Thread(
                target=self._watch_epochs,
                args=(
                    run,
                    trial.number,
                    spec.trial_dir / EVENTS_FILE,
                    events_from,
                    handle,
                    prune,
                    pruned,
                    ended,
                ),
                daemon=True,
            )
            watcher.start()
            outcome = self.runtime.wait(handle)
            ended.set()
            follower.join(timeout=10)
            watcher.join(timeout=10)
            self.runtime.remove(handle)
            handle = None
            result = explain_timeout(spec, read_result(spec.trial_dir, outcome, self.progress.redact))

            if pruned.is_set():
                why = f"stopped early: {pruned.why}"
                self.ledger.finish_trial(
                    run.id,
                    trial.number,
                    TrialStatus.PRUNED,
                    end_reason=outcome.reason.value,
                    error=why,
                    epochs=result.epochs,
                    duration_s=outcome.duration_s,
                )
                self.progress.trial_finished(run.id, trial.number, "pruned", why)
                return self.ledger.trial(run.id, trial.number)

            decision = self.policy.decide(result, restarts)
            launches += 1
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
            if decision.action is Action.GIVE_UP or (result.status is TrialStatus.FAILED and launches > 1):
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
                failure_class=result.failure.value if result.failure else None,
                hint=result.hint or result.warning,
            )
            if result.status is TrialStatus.SUCCEEDED:
                self.progress.trial_finished(
                    run.id,
                    trial.number,
                    "succeeded",
                    f"{result.metric_name} {result.metric:.4f} in {outcome.duration_s:.1f} s",
                    metric=result.metric,
                )
                if result.warning:
                    self.progress.warn(f"trial {trial.number}: {result.warning}")
            else:
                where = f" at {result.error_file}:{result.error_line}" if result.error_line else ""
                what = f"[{result.failure.value}] " if result.failure else ""
                self.progress.trial_finished(run.id, trial.number, "failed", f"{what}{error}{where}")
                if result.hint:
                    self.progress.info(f"   hint: {result.hint}")
            if decision.action is Action.GIVE_UP:
                self.ledger.event(
                    run.id,
                    trial.number,
                    "monitor-gave-up",
                    f"gave up on trial {trial.number}: {decision.reason}",
                )
            return self.ledger.trial(run.id, trial.number)

    def execute_with_plain_retry(
        self, run: RunRecord, trial: TrialRecord, spec: TrialSpec, prune: PruneCheck | None = None
    ) -> TrialRecord:
        """``execute``; a trial whose script failed after the harness stopped one of its fits early runs once
        more without the early stop (the first attempt's folder set aside as ``<n>.early-stop``), with no
        pruning: as the script was written. When that attempt ends without a metric and the first one
        measured one before it failed, the first one is kept, and its metric with it."""
        done = self.execute(run, trial, spec, prune)
        why = broke_after_stop(done, spec)
        if why is None:
            return done
        said = (
            f"trial {trial.number}: the script failed after mlops stopped a fit early ({why}); "
            "running it once more without early stopping"
        )
        self.progress.info(f"   {said}")
        self.ledger.event(run.id, trial.number, "retry-without-early-stop", said)
        try:
            aside = set_aside(spec.trial_dir, "early-stop")
        except BadTrialFile as e:  # the attempt planted something in place of its inputs
            self.progress.warn(f"trial {trial.number} of run {run.id} is not run again: {e}")
            return done
        plain = replace(spec, env={k: v for k, v in spec.env.items() if k not in EARLY_STOP_ENV})
        again = self.execute(run, self.ledger.trial(run.id, trial.number), plain, None)
        if again.metric is not None or done.metric is None:
            return again
        second = spec.trial_dir.with_name(f"{spec.trial_dir.name}.no-early-stop")
        shutil.rmtree(second, ignore_errors=True)
        spec.trial_dir.rename(second)
        aside.rename(spec.trial_dir)
        self._finish_as(done, "without early stopping it failed: the metric measured before is kept")
        return self.ledger.trial(run.id, trial.number)

    def _finish_as(self, done: TrialRecord, why: str) -> None:
        """Record ``done`` (a finished attempt) as the trial's result again."""
        self.ledger.event(done.run_id, done.number, "retry-without-early-stop", f"trial {done.number}: {why}")
        self.ledger.finish_trial(
            done.run_id,
            done.number,
            done.status,
            metric_name=done.metric_name,
            metric=done.metric,
            metric_source=done.metric_source,
            end_reason=done.end_reason,
            exit_code=done.exit_code,
            error=done.error,
            error_file=done.error_file,
            error_line=done.error_line,
            epochs=done.epochs,
            duration_s=done.duration_s,
            failure_class=done.failure_class,
            hint=done.hint,
        )

    def _follow(self, run: RunRecord, number: int, handle: Any) -> None:
        """The training's output, line by line, to the person watching."""
        for line in self.runtime.logs(handle, follow=True):
            self.progress.trial_line(run.id, number, line)

    def _watch_epochs(
        self,
        run: RunRecord,
        number: int,
        path: Path,
        start: int,
        handle: Any,
        prune: PruneCheck | None,
        pruned: Pruned,
        ended: threading.Event,
    ) -> None:
        """Tell the person watching of every epoch the launch records, and ask ``prune`` (if any) after
        each; stop the launch when the answer is yes.

        Reads the events file from where this launch's events start until the launch has ended (``ended``)
        and the file is drained.
        """
        for event in live_events(follow_file(path, lambda: not ended.is_set(), start=start)):
            epoch = epoch_of(event)
            if epoch is None or pruned.is_set():
                continue
            total = event.get("epochs")
            self.progress.trial_epoch(run.id, number, epoch[0], total if isinstance(total, int) else None)
            why = prune(*epoch) if prune is not None else None
            if why:
                pruned.why = why
                pruned.set()
                self.runtime.stop(handle)
