"""A Keras training stops when more epochs no longer help, or once it is past the target, and keeps the
weights of its best epoch; a script's own EarlyStopping is respected, not doubled. What the script observes
does not change (issue 23): a history as long as the epochs it asked for, numbers as numpy scalars, fits
inside its while loops never stopped, and a trial that fails after an early stop runs again without it."""

from __future__ import annotations

import json

import pytest

from mlops.domain import TrialStatus
from mlops.progress import Progress
from mlops.runtime.local import LocalRuntime
from mlops_harness.protocol import EVENTS_FILE, METRICS_FILE, OUTCOME_FILE, EventKind, read_events
from monitor.supervisor import RestartPolicy, Supervisor
from tests.support.processes import run_harness
from tests.support.trials import ledger_trial, trial_spec

# A small network on the digits; from epoch ``WRECK_FROM`` (0-based) on, its weights are zeroed as each
# epoch begins, as a training that diverges would leave them: the validation accuracy can only fall.
SCRIPT = """
import keras
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

X, y = load_digits(return_X_y=True)
X = X / 16.0
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)


class Diverge(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch >= {wreck_from}:
            self.model.set_weights([w * 0 for w in self.model.get_weights()])


model = keras.Sequential([keras.Input(shape=(64,)), keras.layers.Dense(32, activation="relu"),
                          keras.layers.Dense(10, activation="softmax")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(X_train, y_train, epochs={epochs}, validation_split={split}, verbose=0,
          callbacks=[Diverge(){own}])
loss, accuracy = model.evaluate(X_test, y_test, verbose=0)
print("test accuracy", accuracy)
"""


def train(tmp_path, env, epochs=12, wreck_from=99, own="", split=0.2):
    script = SCRIPT.format(epochs=epochs, wreck_from=wreck_from, own=own, split=split)
    done, out = run_harness(tmp_path, script, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    metrics = json.loads((out / METRICS_FILE).read_text())
    stops = [e.fields for e in read_events(out / EVENTS_FILE) if e.kind is EventKind.STOPPED]
    return done, metrics, stops


@pytest.mark.slow
def test_a_training_that_stops_improving_stops_with_its_best_weights(tmp_path):
    done, metrics, stops = train(tmp_path, {"MLOPS_PATIENCE": "2"}, epochs=14, wreck_from=6)
    (stop,) = stops
    assert stop["why"] == "patience" and stop["monitor"] == "val_accuracy" and stop["patience"] == 2
    assert stop["best_epoch"] <= 6 and stop["epoch"] == stop["best_epoch"] + 2  # two epochs without better
    assert len(metrics["history"]) == stop["epoch"] < 14
    assert metrics["stopped"] == [stop]
    # What the fit trained on, for the tuner: its size, type and range (the digits scaled to 0..1).
    assert metrics["inputs"] == [{"fit": 0, "samples": 1257, "dtype": "float64", "min": 0.0, "max": 1.0}]
    # The weights of the best epoch were put back: the zeroed ones would score about a tenth.
    curve = [row["val_accuracy"] for row in metrics["history"]]
    assert max(curve) > 0.6 and curve[-1] < 0.3
    assert metrics["source"] == "evaluate" and metrics["value"] > 0.6
    assert f"fit 0 stopped at epoch {stop['epoch']}: no better val_accuracy in 2 epochs" in done.stdout


@pytest.mark.slow
def test_a_training_past_the_target_stops_there(tmp_path):
    _, metrics, stops = train(tmp_path, {"MLOPS_PATIENCE": "0", "MLOPS_STOP_AT": "0.6"}, epochs=30)
    (stop,) = stops
    curve = [row["val_accuracy"] for row in metrics["history"]]
    assert stop["why"] == "target" and stop["epoch"] == len(curve) < 30
    assert curve[-1] >= 0.6 and all(value < 0.6 for value in curve[:-1])  # the first epoch past it


@pytest.mark.slow
def test_a_training_without_validation_data_stops_on_its_accuracy_by_a_wider_margin(tmp_path):
    _, metrics, stops = train(tmp_path, {"MLOPS_PATIENCE": "0", "MLOPS_STOP_AT": "0.6"}, epochs=30, split=0.0)
    (stop,) = stops
    curve = [row["accuracy"] for row in metrics["history"]]
    assert "val_accuracy" not in metrics["history"][0]
    assert stop["why"] == "target" and stop["monitor"] == "accuracy" and stop["epoch"] == len(curve) < 30
    assert curve[-1] >= 0.68 and all(value < 0.68 for value in curve[:-1])  # 0.6 and the margin of 0.08


@pytest.mark.slow
def test_the_scripts_own_early_stopping_is_respected_and_not_doubled(tmp_path):
    own = ', keras.callbacks.EarlyStopping(monitor="val_loss", patience=50)'
    _, metrics, stops = train(tmp_path, {"MLOPS_PATIENCE": "2"}, epochs=8, wreck_from=3, own=own)
    assert stops == [] and len(metrics["history"]) == 8  # its patience of 50, not ours of 2


@pytest.mark.slow
def test_without_patience_or_target_every_epoch_asked_for_runs(tmp_path):
    _, metrics, stops = train(tmp_path, {"MLOPS_PATIENCE": "0"}, epochs=8, wreck_from=3)
    assert stops == [] and len(metrics["history"]) == 8


# What a script reads after its fits, with early stopping on: the history by epoch, numpy scalars, and a
# loop that trains until it is good enough (which a fit stopped early would make run other than written).
OBSERVES = """
import numpy as np
import keras
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, test_size=0.3, random_state=0)


def make():
    model = keras.Sequential([keras.Input(shape=(64,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


model = make()
h = model.fit(X_train, y_train, epochs=12, validation_split=0.2, verbose=0)
p = h.history["val_accuracy"]
assert len(p) == 12 and h.epoch == list(range(12)) and model.history is h
assert all(isinstance(v, np.float64) for column in h.history.values() for v in column)
print("epoch 12:", p[11], np.array2string(h.history["accuracy"][-1] * 100))
loss, accuracy = model.evaluate(X_test, y_test, verbose=0)
assert isinstance(accuracy, np.float64) and isinstance(accuracy, float)

rounds, accuracy = 0, 0.0
while accuracy < 0.9:
    rounds += 1
    model = make()
    model.fit(X_train, y_train, epochs=4 * rounds, validation_split=0.2, verbose=0)
    accuracy = model.evaluate(X_test, y_test, verbose=0)[1]
print("rounds", rounds)
"""


@pytest.mark.slow
def test_what_a_script_reads_after_a_fit_stopped_early_is_what_it_would_have_read(tmp_path):
    done, out = run_harness(tmp_path, OBSERVES, env={"MLOPS_PATIENCE": "0", "MLOPS_STOP_AT": "0.3"})
    assert done.returncode == 0, done.stdout + done.stderr
    stops = [e.fields for e in read_events(out / EVENTS_FILE) if e.kind is EventKind.STOPPED]
    (stop,) = stops  # the first fit only: the fits inside the while loop are never stopped
    assert stop["fit"] == 0 and stop["why"] == "target" and stop["epoch"] < 12
    assert (
        f"fit 0 ran {stop['epoch']} of its 12 epochs: the history it returns is filled to 12 with the values of "
        f"epoch {stop['epoch']}"
    ) in done.stdout
    lines = OBSERVES.splitlines()
    loop = next(n for n, line in enumerate(lines, start=1) if line.startswith("while "))
    fit = next(n for n, line in enumerate(lines, start=1) if "epochs=4 * rounds" in line)
    said = (
        f"the fit at train.py:{fit} runs inside the while loop of line {loop}: mlops does not stop it early"
    )
    assert said in done.stdout
    metrics = json.loads((out / METRICS_FILE).read_text())
    assert len([row for row in metrics["history"] if row["fit"] == 0]) == stop["epoch"]  # what really ran
    assert metrics["source"] == "evaluate" and metrics["value"] >= 0.9


# A script that reads the log its own CSVLogger wrote, by epoch: a fit stopped early leaves it short, which
# no padding of the history can hide.
CSV_LOG = """
import csv
import keras
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, test_size=0.3, random_state=0)
model = keras.Sequential([keras.Input(shape=(64,)), keras.layers.Dense(32, activation="relu"),
                          keras.layers.Dense(10, activation="softmax")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(X_train, y_train, epochs=EPOCHS, validation_split=0.2, verbose=0,
          callbacks=[keras.callbacks.CSVLogger("training.log")])
with open("training.log") as f:
    rows = list(csv.DictReader(f))
print("last epoch's validation accuracy", rows[EPOCHS - 1]["val_accuracy"])
print("test accuracy", model.evaluate(X_test, y_test, verbose=0)[1])
"""


def retried(tmp_path, script, timeout_s=300):
    env = {"MLOPS_PATIENCE": "3", "MLOPS_STOP_AT": "0.0"}  # stops every fit at its first epoch
    spec = trial_spec(tmp_path, "logged", script, env=env, timeout_s=timeout_s, memory_mb=None)
    ledger, run, trial = ledger_trial(spec)
    supervisor = Supervisor(LocalRuntime(tmp_path / "ws"), ledger, Progress(), RestartPolicy())
    return ledger, run, spec, supervisor.execute_with_plain_retry(run, trial, spec)


@pytest.mark.slow
def test_a_trial_that_fails_after_an_early_stop_runs_again_without_it(tmp_path):
    ledger, run, spec, finished = retried(tmp_path, CSV_LOG.replace("EPOCHS", "6"))
    assert finished.status is TrialStatus.SUCCEEDED and finished.metric_source == "evaluate"
    first = spec.trial_dir.with_name("0.early-stop")
    assert json.loads((first / OUTCOME_FILE).read_text())["error"].startswith("IndexError")
    assert [e.kind for e in read_events(first / EVENTS_FILE)].count(EventKind.STOPPED) == 1
    assert not [e for e in read_events(spec.trial_dir / EVENTS_FILE) if e.kind is EventKind.STOPPED]
    assert len([e for e in read_events(spec.trial_dir / EVENTS_FILE) if e.kind is EventKind.EPOCH]) == 6
    said = [e.message for e in ledger.events(run.id) if e.kind == "retry-without-early-stop"]
    assert said == [
        "trial 0: the script failed after mlops stopped a fit early (IndexError: list index out of range); "
        "running it once more without early stopping"
    ]


# Measures its metric, then fails on a name of Keras 1 (the history's 'val_acc'); without the early stop its
# fit of a million epochs never ends.
MEASURED_THEN_FAILS = """
import keras
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, test_size=0.3, random_state=0)
model = keras.Sequential([keras.Input(shape=(64,)), keras.layers.Dense(32, activation="relu"),
                          keras.layers.Dense(10, activation="softmax")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
h = model.fit(X_train, y_train, epochs=1000000, validation_split=0.2, verbose=0)
print("test accuracy", model.evaluate(X_test, y_test, verbose=0)[1])
print(h.history["val_acc"][-1])
"""


@pytest.mark.slow
def test_a_metric_measured_before_the_failure_is_kept_when_the_run_without_early_stop_gives_none(tmp_path):
    ledger, run, spec, finished = retried(tmp_path, MEASURED_THEN_FAILS, timeout_s=60)
    assert finished.status is TrialStatus.SUCCEEDED and finished.metric_source == "evaluate"
    assert "KeyError: 'val_acc'" in (finished.hint or "")
    assert json.loads((spec.trial_dir / OUTCOME_FILE).read_text())["failed_after_metric"]
    assert spec.trial_dir.with_name("0.no-early-stop").is_dir()  # the attempt without it, set aside
    kinds = [e.kind for e in ledger.events(run.id)]
    assert kinds.count("retry-without-early-stop") == 2 and kinds[-1] == "trial-succeeded"
    # The attempt without early stop timed out: what it measured on the way is not the script's own result.
    assert (spec.trial_dir.with_name("0.no-early-stop") / "log.txt").is_file()
    said = [e.message for e in ledger.events(run.id) if e.kind == "retry-without-early-stop"]
    assert said[-1] == (
        "trial 0: without early stopping it measured nothing of its own: the metric measured before is kept"
    )
