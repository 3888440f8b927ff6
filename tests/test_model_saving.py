"""The harness keeps the model that produced the metric, and ``--check-model`` loads it in a fresh process.

The bad input of issue 17, one test each: two models of which the second is evaluated, a custom layer Keras
cannot rebuild, a disk too full for the model, a scikit-learn Pipeline, a KMeans, a script that saves its
own model.h5. Every saved model is loaded back in a fresh interpreter, as a user would.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mlops_harness.protocol import (
    CHECK_FILE,
    EVENTS_FILE,
    MODEL_CARD,
    EventKind,
    ExitCode,
    last_model,
    read_events,
)
from tests.support.model_checks import fresh_python
from tests.support.processes import HARNESS, run_harness

DIGITS = """
    import keras
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X / 16.0, y, random_state=0)
"""

TWO_NETWORKS = (
    DIGITS
    + """
    def net(units):
        m = keras.Sequential([keras.Input((64,)), keras.layers.Dense(units, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return m

    first = net(4)
    first.fit(Xtr, ytr, epochs=2, verbose=0, validation_split=0.2)
    second = net(32)
    second.fit(Xtr, ytr, epochs=3, verbose=0)
    second.evaluate(Xte, yte, verbose=0)
    first.predict(Xte[:3], verbose=0)  # used afterwards, but not what was evaluated
"""
)

KERAS_ACCURACY = """
import sys
import keras, numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
X, y = load_digits(return_X_y=True)
_, Xte, _, yte = train_test_split(X / 16.0, y, random_state=0)
model = keras.models.load_model(sys.argv[1])
hidden = model.layers[0].units
print(hidden, float(np.mean(np.argmax(model.predict(Xte, verbose=0), axis=1) == yte)))
"""

SKLEARN_SCORE = """
import sys
import joblib
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
X, y = load_digits(return_X_y=True)
_, Xte, _, yte = train_test_split(X, y, random_state=0)
model = joblib.load(sys.argv[1])
print(type(model).__name__, repr(float(model.score(Xte, yte))))
"""


def metric_of(out):
    return json.loads((out / "metrics.json").read_text())


def model_event(out):
    return last_model(out / EVENTS_FILE)


def check(tmp_path, out) -> tuple[int, dict]:
    """``--check-model`` on the trial's model, with a card as the orchestrator writes it."""
    saved = model_event(out)
    folder = out / "model"
    card = {**saved, "file": saved["file"].split("/")[-1]}
    (folder / MODEL_CARD).write_text(json.dumps(card))
    done = subprocess.run(
        [
            sys.executable,
            str(HARNESS),
            "--check-model",
            "--model",
            str(folder),
            "--out",
            str(tmp_path / "check"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.returncode, json.loads((tmp_path / "check" / CHECK_FILE).read_text())


@pytest.mark.slow
def test_of_two_networks_the_evaluated_one_is_saved(tmp_path):
    done, out = run_harness(tmp_path, TWO_NETWORKS)
    assert done.returncode == 0, done.stdout + done.stderr
    metric = metric_of(out)
    saved = model_event(out)
    assert saved["saved"] is True and saved["origin"] == "evaluate" and saved["framework"] == "keras"
    assert saved["input"] == {"kind": "array", "shape": [None, 64], "dtype": "float64"}
    assert saved["versions"]["keras"] and saved["versions"]["tensorflow"] and saved["reload_error"] is None
    units, accuracy = fresh_python(KERAS_ACCURACY, str(out / saved["file"])).split()
    assert int(units) == 32  # the second network, not the first nor the last one used
    assert abs(float(accuracy) - metric["value"]) <= 1e-4


@pytest.mark.slow
def test_a_custom_layer_keras_cannot_rebuild_is_a_warning_and_the_trial_succeeds(tmp_path):
    done, out = run_harness(
        tmp_path,
        DIGITS
        + """
    class Scale(keras.layers.Layer):  # no get_config: Keras saves it, but cannot rebuild it
        def __init__(self, factor):
            super().__init__()
            self.factor = factor

        def call(self, x):
            return x * self.factor

    model = keras.Sequential([keras.Input((64,)), Scale(0.5), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(Xtr, ytr, epochs=1, verbose=0)
    model.evaluate(Xte, yte, verbose=0)
    """,
    )
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    assert metric_of(out)["source"] == "evaluate"
    saved = model_event(out)
    assert "Could not locate class 'Scale'" in saved["reload_error"]
    assert "[mlops] warning: the saved model does not load back" in done.stdout
    assert "get_config()" in done.stdout
    returncode, result = check(tmp_path, out)  # a fresh process says it too
    assert returncode == ExitCode.MODEL_NOT_LOADED
    assert result["loaded"] is False and "Could not locate class 'Scale'" in result["error"]


@pytest.mark.slow
def test_a_disk_too_full_for_the_model_is_a_warning_and_the_metric_is_kept(tmp_path):
    done, out = run_harness(
        tmp_path,
        """
        from sklearn.datasets import load_digits
        from sklearn.ensemble import RandomForestClassifier
        X, y = load_digits(return_X_y=True)
        forest = RandomForestClassifier(n_estimators=60, random_state=0).fit(X[:1200], y[:1200])
        print("accuracy", forest.score(X[1200:], y[1200:]))
        """,
        max_file_bytes=256 * 1024,  # the forest's pickle is a few MB
    )
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    assert metric_of(out)["value"] > 0.8 and (out / "accuracy.txt").exists()
    saved = model_event(out)
    assert saved["saved"] is False and saved["error"].startswith("OSError: File too large")
    assert saved["class"] == "RandomForestClassifier"
    assert "[mlops] warning: the model was not saved: OSError" in done.stdout
    assert list((out / "model").iterdir()) == []  # no half-written model left to be taken for one
    assert json.loads((out / "outcome.json").read_text())["status"] == "ok"


@pytest.mark.slow
def test_a_pipeline_is_saved_whole_and_scores_the_same_in_a_fresh_process(tmp_path):
    done, out = run_harness(
        tmp_path,
        """
        from sklearn.datasets import load_digits
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import train_test_split
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler
        X, y = load_digits(return_X_y=True)
        Xtr, Xte, ytr, yte = train_test_split(X, y, random_state=0)
        pipe = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(C=0.05, max_iter=300))])
        pipe.fit(Xtr, ytr)
        print("test accuracy", pipe.score(Xte, yte))
        """,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    saved = model_event(out)
    assert saved["class"] == "Pipeline(StandardScaler, LogisticRegression)" and saved["origin"] == "score"
    assert saved["format"] == "pickle" and saved["file"] == "model/model.pkl"
    name, score = fresh_python(SKLEARN_SCORE, str(out / saved["file"])).split()
    assert name == "Pipeline"  # the scaler is inside: raw pixels in, classes out
    assert abs(float(score) - metric_of(out)["value"]) <= 1e-6
    returncode, result = check(tmp_path, out)
    assert returncode == 0 and result["loaded"] is True and result["output_shape"] == [4]


@pytest.mark.slow
def test_the_estimator_whose_predictions_were_scored_is_saved_not_the_last_one_used(tmp_path):
    done, out = run_harness(
        tmp_path,
        """
        from sklearn.datasets import load_digits
        from sklearn.metrics import accuracy_score
        from sklearn.model_selection import train_test_split
        from sklearn.naive_bayes import GaussianNB
        from sklearn.neighbors import KNeighborsClassifier
        X, y = load_digits(return_X_y=True)
        Xtr, Xte, ytr, yte = train_test_split(X, y, random_state=0)
        knn = KNeighborsClassifier(n_neighbors=3).fit(Xtr, ytr)
        bayes = GaussianNB().fit(Xtr, ytr)
        y_pred = knn.predict(Xte)
        bayes.predict(Xte)
        print("accuracy", accuracy_score(yte, y_pred))
        """,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    saved = model_event(out)
    assert saved["class"] == "KNeighborsClassifier" and saved["origin"] == "accuracy_score"
    name, score = fresh_python(SKLEARN_SCORE, str(out / saved["file"])).split()
    assert name == "KNeighborsClassifier" and abs(float(score) - metric_of(out)["value"]) <= 1e-6


@pytest.mark.slow
def test_a_kmeans_is_saved_and_its_clustering_gives_the_same_silhouette(tmp_path):
    done, out = run_harness(
        tmp_path,
        """
        from sklearn.cluster import KMeans
        from sklearn.datasets import make_blobs
        X, _ = make_blobs(n_samples=300, centers=3, cluster_std=0.6, random_state=2)
        labels = KMeans(n_clusters=3, n_init=5, random_state=0).fit_predict(X)
        """,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    metric = metric_of(out)
    saved = model_event(out)
    assert saved["class"] == "KMeans" and saved["origin"] == "kmeans" and metric["metric"] == "silhouette"
    silhouette = fresh_python(
        """
import sys, joblib
from sklearn.datasets import make_blobs
from sklearn.metrics import silhouette_score
X, _ = make_blobs(n_samples=300, centers=3, cluster_std=0.6, random_state=2)
model = joblib.load(sys.argv[1])
print(model.n_clusters, repr(float(silhouette_score(X, model.predict(X)))))
""",
        str(out / saved["file"]),
    ).split()
    assert silhouette[0] == "3" and abs(float(silhouette[1]) - metric["value"]) <= 1e-6


@pytest.mark.slow
def test_a_script_that_saves_its_own_model_h5_keeps_it_and_ours_is_beside_it(tmp_path):
    done, out = run_harness(
        tmp_path,
        DIGITS
        + """
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(Xtr, ytr, epochs=2, verbose=0)
    model.evaluate(Xte, yte, verbose=0)
    model.save("model.h5")
    """,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    theirs, ours = out / "work" / "model.h5", out / "model" / "model.keras"
    assert theirs.is_file() and ours.is_file()
    both = fresh_python(
        """
import sys, keras, numpy as np
a, b = (keras.models.load_model(p) for p in sys.argv[1:])
print(all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights())))
""",
        str(theirs),
        str(ours),
    )
    assert both == "True"


@pytest.mark.slow
def test_early_stopping_saves_the_restored_epoch_and_judges_it_on_that_epoch(tmp_path):
    done, out = run_harness(
        tmp_path,
        DIGITS
        + """
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=2, restore_best_weights=True)
    model.fit(Xtr, ytr, epochs=12, validation_data=(Xte, yte), callbacks=[stop], verbose=0)
    """,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    metric = metric_of(out)
    assert metric["source"] == "val_accuracy"
    best = max(metric["history"], key=lambda row: (row["val_accuracy"], -row["epoch"]))
    assert metric.get("epoch") == best["epoch"] and metric["value"] == best["val_accuracy"]
    _, accuracy = fresh_python(KERAS_ACCURACY, str(out / "model" / "model.keras")).split()
    assert abs(float(accuracy) - metric["value"]) <= 1e-4  # the model saved is the epoch that was judged


def test_a_metric_with_no_model_behind_it_says_so_in_the_model_event(tmp_path):
    done, out = run_harness(tmp_path, "open('accuracy.txt', 'w').write('0.9')\n")
    assert done.returncode == 0
    saved = model_event(out)
    assert saved["saved"] is False and "from file:accuracy.txt" in saved["error"]
    kinds = [e.kind for e in read_events(out / EVENTS_FILE)]
    assert kinds.index(EventKind.METRIC) < kinds.index(EventKind.MODEL) < kinds.index(EventKind.FINISHED)


def test_check_model_on_a_folder_without_a_card_fails_clearly(tmp_path):
    (tmp_path / "model").mkdir()
    done = subprocess.run(
        [sys.executable, str(HARNESS), "--check-model", "--model", str(tmp_path / "model")]
        + ["--out", str(tmp_path / "check")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == ExitCode.MODEL_NOT_LOADED
    result = json.loads((tmp_path / "check" / CHECK_FILE).read_text())
    assert result["loaded"] is False and "no model card" in result["error"]


@pytest.mark.slow
def test_classes_and_functions_of_the_script_and_its_local_modules_travel_with_the_model(tmp_path):
    done, out = run_harness(
        tmp_path,
        """
        from sklearn.datasets import load_digits
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import train_test_split
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import FunctionTransformer
        from features import Scaled

        X, y = load_digits(return_X_y=True)
        Xtr, Xte, ytr, yte = train_test_split(X, y, random_state=0)
        pipe = make_pipeline(FunctionTransformer(lambda a: a + 1.0), Scaled(), LogisticRegression(max_iter=500))
        pipe.fit(Xtr, ytr)
        print(pipe.score(Xte, yte))
        """,
        extra_files={
            "features.py": """
                from sklearn.base import BaseEstimator, TransformerMixin

                class Scaled(TransformerMixin, BaseEstimator):
                    def fit(self, X, y=None):
                        self.top_ = X.max()
                        return self

                    def transform(self, X):
                        return X / self.top_
            """
        },
    )
    assert done.returncode == 0, done.stdout + done.stderr
    saved = model_event(out)
    assert saved["class"] == "Pipeline(FunctionTransformer, Scaled, LogisticRegression)"
    elsewhere = tmp_path / "elsewhere"  # no script, no features.py: only the file
    elsewhere.mkdir()
    (elsewhere / "model.pkl").write_bytes((out / saved["file"]).read_bytes())
    name, score = fresh_python(SKLEARN_SCORE, str(elsewhere / "model.pkl")).split()
    assert name == "Pipeline" and abs(float(score) - metric_of(out)["value"]) <= 1e-6
