"""The tuning loop on a real ledger and real codemods, with a fake executor in place of training.

The executor scores a variant from its source (how many units its hidden layer has), so these tests run
in milliseconds and say exactly what the loop does: the stop conditions, the failures in a row, resuming
a killed loop, and parallel batches.
"""

from __future__ import annotations

import dataclasses
import os
import re
import threading
import time
from pathlib import Path

import pytest

from mlops.domain import Kind, RunStatus, TrialStatus
from mlops.layout import SOURCE, RunLayout
from mlops.ledger import Ledger, RunRecord, TrialEnd, TrialRecord
from mlops.runtime.base import TrialSpec
from tests.support.loop import FakeExecute, new_run, tuner
from tweak.loop import Budget, stop_reason

WEAK_DENSE = """\
from keras import layers, models
model = models.Sequential([
    layers.Input(shape=(64,)),
    layers.Dense(3, activation="relu"),
    layers.Dense(10, activation="softmax"),
])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(X, y, epochs=2)
"""


def units_score(source: str) -> float:
    """A stand-in for training: more hidden units score higher (3 units: 0.3, 128: 0.95)."""
    units = int(re.search(r"Dense\((\d+), activation=.relu.", source).group(1))
    return min(0.95, 0.1 * units) if units < 100 else 0.95


def make_run(tmp_path: Path, ledger: Ledger, strategy: str = "tpe", max_trials: int = 5) -> RunRecord:
    return new_run(tmp_path, ledger, WEAK_DENSE, Kind.ANN, "keras", strategy, max_trials)


@pytest.fixture
def ledger(tmp_path):
    ledger = Ledger(tmp_path / "ledger.db")
    yield ledger
    ledger.close()


def test_the_loop_stops_at_the_target_and_keeps_the_best_source_and_its_diff(tmp_path, ledger):
    run = make_run(tmp_path, ledger)
    execute = FakeExecute(ledger, units_score)
    done = tuner(ledger, execute).tune(run)
    assert execute.ran == [0, 1]  # trial 0 as pushed (0.3), the informed first guess (128 units: 0.95)
    assert done.status is RunStatus.REACHED and done.best_trial == 1 and done.best_metric == 0.95
    assert done.baseline_metric == pytest.approx(0.3)
    assert "Dense(128" in (run.dir / "best.py").read_text()
    diff = (run.dir / "best.diff").read_text()
    assert "-    layers.Dense(3" in diff and "+    layers.Dense(128" in diff
    trials = ledger.trials(run.id)
    assert trials[1].tweaks[0][0] == "scale_units" and trials[1].seed == 1


def test_the_budget_ends_a_run_that_never_reaches_the_target(tmp_path, ledger):
    run = make_run(tmp_path, ledger, max_trials=3)
    execute = FakeExecute(ledger, score=lambda source: 0.5)
    done = tuner(ledger, execute, max_trials=3).tune(run)
    assert execute.ran == [0, 1, 2]
    assert done.status is RunStatus.EXHAUSTED and "3 trials used, best 0.5000" in done.reason


def test_three_failures_in_a_row_without_any_metric_fail_the_run(tmp_path, ledger):
    run = make_run(tmp_path, ledger)
    execute = FakeExecute(ledger, units_score, fail={0, 1, 2, 3})
    done = tuner(ledger, execute).tune(run)
    assert execute.ran == [0, 1, 2]
    assert done.status is RunStatus.FAILED and "3 trials failed in a row" in done.reason


def test_only_baseline_trains_trial_0_and_a_later_tune_goes_on_from_there(tmp_path, ledger):
    run = make_run(tmp_path, ledger)
    execute = FakeExecute(ledger, units_score)
    after_job_3 = tuner(ledger, execute).tune(run, only_baseline=True)
    assert execute.ran == [0] and after_job_3.status is RunStatus.RUNNING
    tuner(ledger, execute).tune(ledger.run(run.id))
    assert execute.ran == [0, 1]


def test_a_loop_killed_with_a_trial_under_way_finishes_it_before_proposing(tmp_path, ledger):
    run = make_run(tmp_path, ledger)
    execute = FakeExecute(ledger, units_score)
    tuner(ledger, execute).tune(run, only_baseline=True)
    folder = RunLayout(run.dir).trial(1).dir
    folder.mkdir(parents=True)
    (folder / SOURCE).write_text(WEAK_DENSE.replace("Dense(3,", "Dense(90,"))
    ledger.add_trial(run.id, 1, [], ["by hand"], 1)
    ledger.start_trial(run.id, 1, {"runtime": "fake"})  # the orchestrator died here
    done = tuner(ledger, execute).tune(ledger.run(run.id))
    assert execute.ran == [0, 1]  # trial 1 was finished, not proposed again
    assert done.status is RunStatus.REACHED and done.best_trial == 1
    assert ledger.trial(run.id, 1).changes == ["by hand"]


class TogetherExecute(FakeExecute):
    """Trials after trial 0 wait at a barrier for the others of their batch: a batch run one trial after
    another never gets past it (the barrier breaks after a minute, and the trial with it)."""

    def __init__(self, ledger: Ledger, batch: int) -> None:
        super().__init__(ledger, lambda source: 0.5)
        self.barrier = threading.Barrier(batch, timeout=60)

    def measure(self, spec: TrialSpec) -> float:
        if spec.trial > 0:
            self.barrier.wait()
        return super().measure(spec)


def test_parallel_batches_propose_distinct_trials_at_once(tmp_path, ledger):
    run = make_run(tmp_path, ledger, max_trials=4)
    execute = TogetherExecute(ledger, batch=3)
    done = tuner(ledger, execute, max_trials=4, parallel=3).tune(run)
    assert sorted(execute.ran) == [0, 1, 2, 3] and done.status is RunStatus.EXHAUSTED
    assert not execute.barrier.broken  # trials 1 to 3 were under way together
    sources = {(RunLayout(run.dir).trial(n).dir / SOURCE).read_text() for n in (1, 2, 3)}
    assert len(sources) == 3


class EpochsExecute(FakeExecute):
    """Trial 1 reaches the target at once; trial 2 trains epoch by epoch, asking ``prune`` after each,
    until it is told to stop (after a minute it gives up and ends as if trained to its last epoch)."""

    def __call__(self, run: RunRecord, trial: TrialRecord, spec: TrialSpec, prune) -> TrialRecord:
        if trial.number != 2:
            return super().__call__(run, trial, spec, prune)
        self.ran.append(trial.number)
        self.ledger.start_trial(run.id, trial.number, {"runtime": "fake"})
        deadline = time.monotonic() + 60
        epoch = 0
        while time.monotonic() < deadline:
            epoch += 1
            why = prune(epoch, {"val_accuracy": 0.5})
            if why:
                self.ledger.finish_trial(
                    run.id, trial.number, TrialEnd(TrialStatus.PRUNED, epochs=epoch, error=why)
                )
                return self.ledger.trial(run.id, trial.number)
            time.sleep(0.01)  # the next epoch's training
        self.ledger.finish_trial(
            run.id,
            trial.number,
            TrialEnd(TrialStatus.SUCCEEDED, metric_name="accuracy", metric=0.5, epochs=epoch),
        )
        return self.ledger.trial(run.id, trial.number)


def test_a_trial_of_a_batch_that_reaches_the_target_stops_the_others_at_their_next_epoch(tmp_path, ledger):
    run = make_run(tmp_path, ledger, max_trials=3)
    done = tuner(ledger, EpochsExecute(ledger, units_score), max_trials=3, parallel=2).tune(run)
    assert done.status is RunStatus.REACHED and done.best_trial == 1
    assert ledger.trial(run.id, 2).status is TrialStatus.PRUNED
    assert ledger.trial(run.id, 2).error == "another trial of its batch reached the target"


def trial_record(number: int, status: TrialStatus, metric: float | None = None, **kw) -> TrialRecord:
    return TrialRecord("r", number, status, [], [], number, metric=metric, **kw)


def test_stop_reason_is_a_pure_function_of_the_trials(tmp_path, ledger):
    run = make_run(tmp_path, ledger, max_trials=3)
    budget = Budget(target=0.8, max_trials=3, max_minutes=None)
    ok, failed = TrialStatus.SUCCEEDED, TrialStatus.FAILED
    assert stop_reason(run, [trial_record(0, ok, 0.5)], budget) is None
    status, why = stop_reason(run, [trial_record(0, ok, 0.5), trial_record(1, ok, 0.85)], budget)
    assert status is RunStatus.REACHED and why.startswith("trial 1 reached 0.8500")
    syntax = trial_record(
        0, failed, error="SyntaxError: invalid syntax", error_type="SyntaxError", error_line=3
    )
    assert stop_reason(run, [syntax], budget)[0] is RunStatus.FAILED
    # decided on the exception's type the harness reported, never on the words of its message
    words = trial_record(
        0, failed, error="ValueError: SyntaxError in data.csv", error_type="ValueError", error_line=3
    )
    assert stop_reason(run, [words], budget) is None
    full = [trial_record(0, ok, 0.5), trial_record(1, failed), trial_record(2, TrialStatus.SKIPPED)]
    assert stop_reason(run, full, budget)[0] is RunStatus.EXHAUSTED
    timed = Budget(target=0.8, max_trials=9, max_minutes=1)
    assert stop_reason(ledger.run(run.id), [trial_record(0, ok, 0.5)], timed) is None
    two_minutes_old = dataclasses.replace(ledger.run(run.id), created_at=time.time() - 120)
    status, why = stop_reason(two_minutes_old, [trial_record(0, ok, 0.5)], timed)
    assert status is RunStatus.EXHAUSTED and "wall-time budget" in why


@pytest.mark.parametrize("cls", ["environment", "api", "data", "download", "input"])
def test_a_trial_0_that_no_tweak_can_fix_ends_the_run_there_whatever_the_budget(tmp_path, ledger, cls):
    run = make_run(tmp_path, ledger, max_trials=5)
    execute = FakeExecute(ledger, units_score, fail={0: cls})
    done = tuner(ledger, execute).tune(run)
    assert execute.ran == [0]
    assert (
        done.status is RunStatus.FAILED
        and f"cannot run here [{cls}]" in done.reason
        and "fix it" in done.reason
    )


@pytest.mark.parametrize("max_trials", [1, 2])
def test_a_run_in_which_no_trial_produced_a_metric_failed_whatever_its_budget(tmp_path, ledger, max_trials):
    run = make_run(tmp_path, ledger, max_trials=max_trials)
    execute = FakeExecute(ledger, units_score, fail={0: "code", 1: "code"})
    done = tuner(ledger, execute, max_trials=max_trials).tune(run)
    assert execute.ran == list(range(max_trials))
    assert done.status is RunStatus.FAILED and "no trial produced a metric" in done.reason


def test_parallel_trials_share_the_machine_s_cores_unless_cpus_is_set():
    from jobs.pipeline import trial_cpus
    from mlops.config import load_settings

    cores = os.cpu_count() or 1
    assert trial_cpus(load_settings({"parallel": 2}, env={})) == max(1.0, cores / 2)
    assert trial_cpus(load_settings({"parallel": 2, "cpus": 0.5}, env={})) == 0.5
    assert trial_cpus(load_settings({}, env={})) is None
    assert trial_cpus(load_settings({"parallel": 2}, env={}), number=0) is None  # trial 0 runs alone


def test_seconds_per_epoch_come_from_the_trial_s_epoch_events(tmp_path):
    from mlops_harness.protocol import EVENTS_FILE, EventKind, encode_event
    from tweak.loop import seconds_per_epoch

    lines = [encode_event(EventKind.STARTED, at=100.0, script="x.py", pid=1)]
    lines += [
        encode_event(EventKind.EPOCH, at=110.0 + 2 * n, fit=0, epoch=n, epochs=3, logs={}) for n in (1, 2, 3)
    ]
    (tmp_path / EVENTS_FILE).write_text("\n".join(lines) + "\n")
    assert seconds_per_epoch(tmp_path) == 2.0
    assert seconds_per_epoch(tmp_path / "nothing") is None
