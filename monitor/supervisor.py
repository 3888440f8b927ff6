"""Job 6: watch a training, and start it again when it dies, from its last checkpoint.

A launch that ends by a crash (killed from outside, the engine restarted, the process vanished) is started
again after an exponential backoff, up to a limit; the harness's backup-and-restore callback makes it resume
at the epoch where it stopped. A launch that fails from its own code is tried once more; when it fails the
same way twice (the same traceback) it is a bug, not a crash: the trial is marked failed. A metric the
script measured before the restarts are given up is kept (labelled), as one measured before a timeout or an
``oom`` is (``mlops/trial.py``).

Asked to stop (:meth:`Supervisor.interrupt`: SIGINT or SIGTERM), it stops its trainings, records each as
stopped (a ``trial-stopped`` event; the trial stays unfinished) and raises
:class:`~mlops.errors.Interrupted`. When the run is resumed, a stopped trial starts again from its
checkpoint without counting a restart, a training still going is followed again, and one that ended while
nothing watched it is read, not trained again.

The person watching sees each epoch, and pruning decides on it, from the harness's structured events
(``events.jsonl`` in the trial folder, see ``mlops_harness.protocol``, each checked against its type by
``mlops.trial_records``), never from its human log lines.

A tuning trial whose script failed after the harness stopped one of its fits early is run once more without
the early stop (:meth:`Supervisor.execute_with_plain_retry`): what mlops adds may not make a script fail.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from mlops.domain import TrialStatus
from mlops.errors import Interrupted
from mlops.ledger import Ledger, LedgerEventKind, RunRecord, TrialEnd, TrialRecord
from mlops.ledger.events import TrialDied
from mlops.progress import Progress
from mlops.runtime.base import Outcome, Runtime, TrialSpec, follow_file
from mlops.trial import KEPT_AFTER, LaunchResult, kept, read_result
from mlops.trial_files import BadTrialFile
from mlops.trial_records import live_events
from mlops.waits import explain_timeout
from mlops_harness.protocol import EVENTS_FILE
from monitor.early_stop import EARLY_STOP_ENV, broke_after_stop, set_aside
from monitor.epochs import PruneCheck, Pruned, epoch_of, events_size
from monitor.policy import Action, Decision, RestartPolicy
from monitor.resume import Launch, ended_while_away, stopped_by

__all__ = ["Action", "Decision", "PruneCheck", "RestartPolicy", "Supervisor", "epoch_of", "set_aside"]


class Supervisor:
    """Runs one trial to its end on a runtime, restarting it as the policy says."""

    def __init__(
        self, runtime: Runtime[Any], ledger: Ledger, progress: Progress, policy: RestartPolicy
    ) -> None:
        self.runtime = runtime
        self.ledger = ledger
        self.progress = progress
        self.policy = policy
        self.stopping: int | None = None  # the signal it was asked to stop for
        self._lock = threading.Lock()
        self._live: dict[str, Any] = {}  # trial name -> the handle being waited on
        self._busy = 0  # execute() calls under way

    # -- being asked to stop ---------------------------------------------------------------------------

    def interrupt(self, signum: int) -> bool:
        """Stop every training under way (in the background: a signal handler must return at once). True
        when a trial was under way: each ``execute`` records its trial stopped and raises Interrupted;
        False when none was (the caller raises Interrupted itself)."""
        with self._lock:
            first = self.stopping is None
            self.stopping = self.stopping or signum
            handles, busy = list(self._live.values()), self._busy
        if first:
            for handle in handles:
                threading.Thread(target=self.runtime.stop, args=(handle,), daemon=True).start()
        return busy > 0

    @contextlib.contextmanager
    def _working(self) -> Iterator[None]:
        with self._lock:
            self._busy += 1
        try:
            yield
        finally:
            with self._lock:
                self._busy -= 1

    def _track(self, name: str, handle: Any) -> None:
        with self._lock:
            self._live[name] = handle
            stop = self.stopping is not None
        if stop:  # asked to stop while it was being started
            self.runtime.stop(handle)

    def _refuse_if_stopping(self) -> None:
        if self.stopping is not None:
            raise Interrupted(self.stopping)

    # -- one trial -------------------------------------------------------------------------------------

    def execute(
        self, run: RunRecord, trial: TrialRecord, spec: TrialSpec, prune: PruneCheck | None = None
    ) -> TrialRecord:
        with self._working():
            launch = self._resume(run, trial, spec)
            launches, restarts = 0, trial.restarts
            while True:
                if launch.restart is not None:
                    restarts += 1
                outcome, pruned = self._launch(run, trial, spec, prune, launch)
                result = explain_timeout(spec, read_result(spec.trial_dir, outcome, self.progress.redact))
                if pruned.is_set():
                    return self._pruned(run, trial, result, pruned.why)
                if self.stopping is not None and result.status is not TrialStatus.SUCCEEDED:
                    self._stopped(run, trial, result)
                decision = self.policy.decide(result, restarts)
                launches += 1
                if decision.action is Action.RESTART:
                    self._before_restart(run, trial, result, decision)
                    launch = Launch(restart=decision.reason)
                    continue
                if decision.action is Action.GIVE_UP:
                    result = kept(spec.trial_dir, result)  # a metric it measured before it was killed
                return self._finish(run, trial, result, decision, launches)

    def _resume(self, run: RunRecord, trial: TrialRecord, spec: TrialSpec) -> Launch:
        """Where an unfinished trial goes on from: its training still going, a launch that ended while
        nothing watched it, a stop on purpose, or a training that is gone."""
        if trial.status is TrialStatus.RUNNING and trial.handle:
            handle = self.runtime.attach(spec, trial.handle)
            if handle is not None:
                self.progress.trial_attached(run.id, trial.number)
                return Launch(handle=handle)
            ended = ended_while_away(spec, trial.handle)
            if ended is not None:
                self.progress.info(f"   trial {trial.number} ended while mlops was away: read, not run again")
                return Launch(ended=ended)
            stopped = stopped_by(self.ledger, run.id, trial.number)
            if stopped is not None:
                return Launch(resumed=f"it was stopped by {stopped}; it goes on from its checkpoint")
            return Launch(restart="its training was gone when mlops came back")
        if trial.status is TrialStatus.RUNNING:
            return Launch(restart="mlops stopped before it started")
        self.progress.trial_started(run.id, trial.number, trial.changes)
        return Launch()

    def _launch(
        self, run: RunRecord, trial: TrialRecord, spec: TrialSpec, prune: PruneCheck | None, launch: Launch
    ) -> tuple[Outcome, Pruned]:
        """One launch, run (or attached to) and waited for; how it ended, and whether it was pruned."""
        pruned = Pruned()
        if launch.ended is not None:
            return launch.ended, pruned
        events_from = events_size(spec.trial_dir)
        handle = launch.handle
        if handle is None:
            self._refuse_if_stopping()
            handle = self.runtime.run(spec)
            why = launch.restart or launch.resumed
            self.ledger.start_trial(
                run.id, trial.number, handle.data, restart=launch.restart is not None, reason=why or ""
            )
            if launch.restart is not None:
                self.progress.trial_started(run.id, trial.number, trial.changes, restart=launch.restart)
            elif launch.resumed is not None:
                self.progress.trial_started(run.id, trial.number, trial.changes)
                self.progress.info(f"   trial {trial.number} resumed: {launch.resumed}")
        self._track(spec.name, handle)
        try:
            ended = threading.Event()
            follower = threading.Thread(target=self._follow, args=(run, trial.number, handle), daemon=True)
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
            follower.start()
            watcher.start()
            outcome = self.runtime.wait(handle)
            ended.set()
            follower.join(timeout=10)
            watcher.join(timeout=10)
        finally:
            with self._lock:
                self._live.pop(spec.name, None)
        self.runtime.remove(handle)
        return outcome, pruned

    def _stopped(self, run: RunRecord, trial: TrialRecord, result: LaunchResult) -> None:
        """Record the trial as stopped on purpose (it stays unfinished), say how to go on, and raise."""
        assert self.stopping is not None
        name = signal.Signals(self.stopping).name
        at = f" after {result.epochs} epoch(s)" if result.epochs else ""
        why = (
            f"trial {trial.number} stopped by {name}{at}; it goes on from its checkpoint when the run resumes"
        )
        self.ledger.stop_trial(run.id, trial.number, name, result.epochs, why)
        self.progress.trial_finished(run.id, trial.number, "stopped", why)
        raise Interrupted(self.stopping)

    def _pruned(self, run: RunRecord, trial: TrialRecord, result: LaunchResult, said: str) -> TrialRecord:
        why = f"stopped early: {said}"
        end = TrialEnd(
            TrialStatus.PRUNED,
            end_reason=result.outcome.reason,
            error=why,
            epochs=result.epochs,
            duration_s=result.outcome.duration_s,
        )
        self.ledger.finish_trial(run.id, trial.number, end)
        self.progress.trial_finished(run.id, trial.number, "pruned", why)
        return self.ledger.trial(run.id, trial.number)

    def _before_restart(
        self, run: RunRecord, trial: TrialRecord, result: LaunchResult, decision: Decision
    ) -> None:
        """Say why the trial dies and starts again, and wait the backoff (cut short when asked to stop)."""
        outcome = result.outcome
        self.ledger.event(
            run.id,
            trial.number,
            LedgerEventKind.TRIAL_DIED,
            f"trial {trial.number} ended: {decision.reason}; restarting in {decision.delay_s:g} s",
            TrialDied(outcome.reason.value, outcome.exit_code),
        )
        deadline = time.monotonic() + decision.delay_s
        while time.monotonic() < deadline and self.stopping is None:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
        if self.stopping is not None:
            self._stopped(run, trial, result)

    def _finish(
        self, run: RunRecord, trial: TrialRecord, result: LaunchResult, decision: Decision, launches: int
    ) -> TrialRecord:
        outcome = result.outcome
        error = result.error
        if decision.action is Action.GIVE_UP or (result.status is TrialStatus.FAILED and launches > 1):
            error = f"{result.error} ({decision.reason})"
        end = TrialEnd(
            result.status,
            metric_name=result.metric_name,
            metric=result.metric,
            metric_source=result.metric_source,
            end_reason=outcome.reason,
            exit_code=outcome.exit_code,
            error=error,
            error_file=result.error_file,
            error_line=result.error_line,
            error_type=result.error_type,
            epochs=result.epochs,
            duration_s=outcome.duration_s,
            failure_class=result.failure,
            hint=result.hint or result.warning,
        )
        self.ledger.finish_trial(run.id, trial.number, end)
        self._say_finished(run, trial, result, error)
        if decision.action is Action.GIVE_UP:
            self.ledger.event(
                run.id,
                trial.number,
                LedgerEventKind.MONITOR_GAVE_UP,
                f"gave up on trial {trial.number}: {decision.reason}",
            )
        return self.ledger.trial(run.id, trial.number)

    def _say_finished(
        self, run: RunRecord, trial: TrialRecord, result: LaunchResult, error: str | None
    ) -> None:
        if result.status is TrialStatus.SUCCEEDED:
            self.progress.trial_finished(
                run.id,
                trial.number,
                "succeeded",
                f"{result.metric_name} {result.metric:.4f} in {result.outcome.duration_s:.1f} s",
                metric=result.metric,
            )
            if result.warning:
                self.progress.warn(f"trial {trial.number}: {result.warning}")
            return
        where = f" at {result.error_file}:{result.error_line}" if result.error_line else ""
        what = f"[{result.failure.value}] " if result.failure else ""
        self.progress.trial_finished(run.id, trial.number, "failed", f"{what}{error}{where}")
        if result.hint:
            self.progress.info(f"   hint: {result.hint}")

    def execute_with_plain_retry(
        self, run: RunRecord, trial: TrialRecord, spec: TrialSpec, prune: PruneCheck | None = None
    ) -> TrialRecord:
        """``execute``; a trial whose script failed after the harness stopped one of its fits early runs once
        more without the early stop (the first attempt's folder set aside as ``<n>.early-stop``), with no
        pruning: as the script was written. When that attempt ends without a metric of its own (none, or one
        kept from before its timeout or out-of-memory end) and the first one measured one before it failed,
        the first one is kept, and its metric with it."""
        done = self.execute(run, trial, spec, prune)
        why = broke_after_stop(done, spec)
        if why is None:
            return done
        said = (
            f"trial {trial.number}: the script failed after mlops stopped a fit early ({why}); "
            "running it once more without early stopping"
        )
        self.progress.info(f"   {said}")
        self.ledger.event(run.id, trial.number, LedgerEventKind.RETRY_WITHOUT_EARLY_STOP, said)
        try:
            aside = set_aside(spec.trial_dir, "early-stop")
        except BadTrialFile as e:  # the attempt planted something in place of its inputs
            self.progress.warn(f"trial {trial.number} of run {run.id} is not run again: {e}")
            return done
        plain = replace(spec, env={k: v for k, v in spec.env.items() if k not in EARLY_STOP_ENV})
        again = self.execute(run, self.ledger.trial(run.id, trial.number), plain, None)
        # A metric kept from before a timeout or an out-of-memory end is not the script's own result: the
        # first attempt's, measured where the script measures it, is better.
        ran_out = again.end_reason in KEPT_AFTER
        if (again.metric is not None and not ran_out) or done.metric is None:
            return again
        second = spec.trial_dir.with_name(f"{spec.trial_dir.name}.no-early-stop")
        shutil.rmtree(second, ignore_errors=True)
        spec.trial_dir.rename(second)
        aside.rename(spec.trial_dir)
        self._finish_as(
            done, "without early stopping it measured nothing of its own: the metric measured before is kept"
        )
        return self.ledger.trial(run.id, trial.number)

    def _finish_as(self, done: TrialRecord, why: str) -> None:
        """Record ``done`` (a finished attempt) as the trial's result again."""
        self.ledger.event(
            done.run_id, done.number, LedgerEventKind.RETRY_WITHOUT_EARLY_STOP, f"trial {done.number}: {why}"
        )
        self.ledger.finish_trial(done.run_id, done.number, TrialEnd.of(done))

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
