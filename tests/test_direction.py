"""A run whose metric is a loss (a regression that measures only its MSE, issue 25): lower is better in
the loop. The run reaches its target when a trial's loss is at or under it, its best trial is the lowest
loss, and TPE minimizes it; an accuracy run is unchanged. On a real ledger and real codemods, with a fake
executor in place of training (tests/support/loop.py)."""

from __future__ import annotations

import re

import pytest

from mlops.domain import Kind, RunStatus, TrialStatus
from mlops.ledger import Ledger, RunRecord, TrialEnd, TrialRecord
from mlops.runtime.base import TrialSpec
from tests.support.loop import FakeExecute, new_run, tuner
from tweak import direction
from tweak.facts import model_facts
from tweak.loop import Budget, stop_reason
from tweak.strategies import TPE, Past, SearchState

REGRESSOR = """\
from keras import layers, models
model = models.Sequential([
    layers.Input(shape=(8,)),
    layers.Dense(3, activation="relu"),
    layers.Dense(1),
])
model.compile(optimizer="adam", loss="mse")
model.fit(X, y, epochs=2)
"""


def units_loss(source: str) -> float:
    """A stand-in for training: more hidden units, a lower test MSE (3 units: 0.9; 128: 0.05)."""
    units = int(re.search(r"Dense\((\d+), activation=.relu.", source).group(1))
    return 0.05 if units >= 100 else round(0.9 - 0.005 * units, 4)


class LossExecute(FakeExecute):
    """Records the trial's metric as the harness does for a script that measures only its loss."""

    def __call__(self, run: RunRecord, trial: TrialRecord, spec: TrialSpec, prune) -> TrialRecord:
        self.ran.append(trial.number)
        self.ledger.start_trial(run.id, trial.number, {"runtime": "fake"})
        value = self.measure(spec)
        self.ledger.finish_trial(
            run.id, trial.number, TrialEnd(TrialStatus.SUCCEEDED, metric_name="loss", metric=value)
        )
        return self.ledger.trial(run.id, trial.number)


@pytest.fixture
def ledger(tmp_path):
    ledger = Ledger(tmp_path / "ledger.db")
    yield ledger
    ledger.close()


def test_a_loss_run_reaches_its_target_from_above_and_keeps_the_lowest_loss(tmp_path, ledger):
    run = new_run(tmp_path, ledger, REGRESSOR, Kind.ANN, "keras", target=0.1)
    execute = LossExecute(ledger, units_loss)
    done = tuner(ledger, execute, target=0.1).tune(run)
    # Trial 0's loss 0.885 is above the target; the first guess (128 units) gets 0.05 under it.
    assert execute.ran == [0, 1]
    assert done.status is RunStatus.REACHED and done.best_trial == 1 and done.best_metric == 0.05
    assert "reached 0.0500 <= target 0.1" in done.reason
    assert "Dense(128" in (run.dir / "best.py").read_text()


def test_a_loss_run_that_never_reaches_its_target_keeps_its_lowest_loss_not_its_highest(tmp_path, ledger):
    run = new_run(tmp_path, ledger, REGRESSOR, Kind.ANN, "keras", target=0.01, max_trials=3)
    done = tuner(ledger, LossExecute(ledger, units_loss), max_trials=3, target=0.01).tune(run)
    losses = {t.number: t.metric for t in ledger.trials(run.id)}
    assert done.status is RunStatus.EXHAUSTED
    assert done.best_metric == min(losses.values()) < losses[0], losses


def record(number: int, metric: float, name: str) -> TrialRecord:
    return TrialRecord("r", number, TrialStatus.SUCCEEDED, [], [], number, metric_name=name, metric=metric)


def test_stop_reason_and_the_best_trial_follow_the_metric_s_direction(tmp_path, ledger):
    run = new_run(tmp_path, ledger, REGRESSOR, Kind.ANN, "keras")
    budget = Budget(target=0.3, max_trials=5, max_minutes=None)
    losses = [record(0, 0.9, "loss"), record(1, 0.4, "loss")]
    assert stop_reason(run, losses, budget) is None  # 0.9 and 0.4 are not at or under 0.3
    status, why = stop_reason(run, [*losses, record(2, 0.2, "loss")], budget)
    assert status is RunStatus.REACHED and why.startswith("trial 2 reached 0.2000 <= target 0.3")
    assert direction.best_of(losses).number == 1
    accuracies = [record(0, 0.9, "accuracy"), record(1, 0.4, "accuracy")]
    assert direction.best_of(accuracies).number == 0
    status, why = stop_reason(run, accuracies, Budget(target=0.8, max_trials=5, max_minutes=None))
    assert status is RunStatus.REACHED and why.startswith("trial 0 reached 0.9000 >= target 0.8")


def test_tpe_minimizes_a_loss_and_does_not_prune_on_an_accuracy_curve():
    facts = model_facts(REGRESSOR)
    past = [
        Past(0, [], TrialStatus.SUCCEEDED, 0.9),
        *(Past(n, [], TrialStatus.SUCCEEDED, 0.9 - 0.1 * n, {"epochs": 2 + n}, [0.5] * 3) for n in (1, 2, 3)),
    ]

    def state(lower: bool) -> SearchState:
        return SearchState(Kind.ANN, "keras", facts, 0.1, 0, 4, past, lower_is_better=lower)

    study, _ = TPE()._study(state(True), 0)
    assert study.direction.name == "MINIMIZE" and study.best_trial.value == pytest.approx(0.6)
    assert TPE()._study(state(False), 0)[0].direction.name == "MAXIMIZE"
    assert not TPE().should_prune(state(True), [0.0, 0.0, 0.0])  # an accuracy curve says nothing of a loss
    assert TPE().should_prune(state(False), [0.0, 0.0, 0.0])
