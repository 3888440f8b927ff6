"""A Keras training stops when more epochs no longer help, or once it is past the target, and keeps the
weights of its best epoch; a script's own EarlyStopping is respected, not doubled."""

from __future__ import annotations

import json

import pytest

from mlops_harness.protocol import EVENTS_FILE, METRICS_FILE, EventKind, read_events
from tests.support.processes import run_harness

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
