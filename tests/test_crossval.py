"""A script that trains a scikit-learn model and never measures it gets an honest metric: a clone of its
model, cross-validated by mlops after the script has ended, on the data it was fitted on; the model saved
is the one the script fitted. The scores are checked against scikit-learn's own cross-validation."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_wine
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlops_harness import crossval
from mlops_harness.crossval import folds_for
from mlops_harness.protocol import ExitCode
from mlops_harness.recorder import Recorder
from tests.support.processes import run_harness


def read(out, name):
    return json.loads((out / name).read_text())


def test_five_folds_fewer_for_tiny_data_and_rare_classes():
    assert folds_for(442, None) == 5
    assert folds_for(8, None) == 4  # two samples in each test part at least
    assert folds_for(100, 3) == 3  # a class of three: three stratified folds
    assert folds_for(100, 1) == 5  # a class of one cannot be in every fold: folds as for a regressor
    assert folds_for(3, None) == 0 and folds_for(100, 2) == 2


def fitted_in(tmp_path, seconds: float) -> Recorder:
    rec = Recorder(tmp_path, tmp_path)
    x, y = load_diabetes(return_X_y=True)
    rec.last_fit = {"model": LinearRegression().fit(x, y), "X": x, "y": y, "seconds": seconds}
    return rec


def test_the_folds_are_bounded_in_time(tmp_path, monkeypatch):
    said: list[str] = []
    assert crossval.cross_validate(fitted_in(tmp_path, seconds=100.0), 0, said.append) is None
    assert "took 100 s to fit: cross-validating it would take longer than the 120 s" in said[0]
    monkeypatch.setattr(crossval, "BUDGET_S", 1e-6)  # spent by the first fold: two folds, the least
    found, _ = crossval.cross_validate(fitted_in(tmp_path, seconds=0.0), 0, said.append)
    assert (found["folds"], found["of"]) == (2, 5) and "2 of 5 folds" in said[-1]


@pytest.mark.slow
def test_a_regressor_fitted_and_never_scored_is_cross_validated_and_the_fitted_one_is_saved(tmp_path):
    done, out = run_harness(
        tmp_path,
        """
        from sklearn.datasets import load_diabetes
        from sklearn.linear_model import LinearRegression
        X, y = load_diabetes(return_X_y=True)
        model = LinearRegression()
        model.fit(X, y)
        print("a prediction:", model.predict(X[:1]))
        """,
    )
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    metrics = read(out, "metrics.json")
    x, y = load_diabetes(return_X_y=True)
    expected = cross_val_score(LinearRegression(), x, y, cv=KFold(5, shuffle=True, random_state=0)).mean()
    assert metrics["metric"] == "r2" and metrics["source"] == "cross_validated"
    assert metrics["value"] == pytest.approx(expected, abs=1e-9)  # the trial's seed (0) shuffles the folds
    cv = metrics["cross_validation"]
    assert (cv["folds"], cv["of"], cv["stratified"], cv["estimator"]) == (5, 5, False, "LinearRegression")
    assert "the script measures nothing: its LinearRegression cross-validated by mlops" in done.stdout
    with (out / "model" / "model.pkl").open("rb") as fh:
        saved = pickle.load(fh)  # noqa: S301 (our own trial's model)
    assert np.allclose(saved.coef_, LinearRegression().fit(x, y).coef_)  # the script's, fitted on all data


@pytest.mark.slow
def test_a_classifier_that_only_prints_predictions_gets_a_stratified_accuracy(tmp_path):
    done, out = run_harness(
        tmp_path,
        """
        import pandas as pd
        from sklearn.datasets import load_wine
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        wine = load_wine(as_frame=True)
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
        clf.fit(wine.data, wine.target)
        print(pd.Series(clf.predict(wine.data.head(5))).to_list())
        """,
        env={"MLOPS_SEED": "7"},
    )
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    metrics = read(out, "metrics.json")
    x, y = load_wine(return_X_y=True, as_frame=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    expected = cross_val_score(model, x, y, cv=StratifiedKFold(5, shuffle=True, random_state=7)).mean()
    assert metrics["metric"] == "accuracy" and metrics["source"] == "cross_validated"
    assert metrics["value"] == pytest.approx(expected, abs=1e-9)
    assert metrics["cross_validation"]["stratified"] is True
    assert metrics["cross_validation"]["estimator"] == "Pipeline"


@pytest.mark.slow
def test_what_the_script_measures_or_writes_wins_and_too_few_samples_are_not_cross_validated(tmp_path):
    for name in ("wrote", "tiny"):
        (tmp_path / name).mkdir()
    wrote, out = run_harness(
        tmp_path / "wrote",
        """
        from sklearn.datasets import load_iris
        from sklearn.tree import DecisionTreeClassifier
        X, y = load_iris(return_X_y=True)
        DecisionTreeClassifier(random_state=0).fit(X, y)
        open("accuracy.txt", "w").write("0.5")
        """,
    )
    assert wrote.returncode == ExitCode.OK and read(out, "metrics.json")["source"] == "file:accuracy.txt"
    tiny, out = run_harness(
        tmp_path / "tiny",
        """
        from sklearn.linear_model import LinearRegression
        model = LinearRegression().fit([[1.0], [2.0], [3.0]], [2.0, 4.0, 6.1])
        print(model.predict([[4.0]]))
        """,
    )
    assert tiny.returncode == ExitCode.NO_METRIC
    assert "fitted on too few samples to cross-validate" in tiny.stdout


@pytest.mark.slow
def test_a_regressor_run_is_tuned_towards_an_r2_target_and_every_view_says_how_it_was_measured(tmp_path):
    from tests.support.processes import run_cli
    from tests.support.repos import make_repo

    repo = make_repo(
        tmp_path / "repo",
        {
            "train.py": """
            from sklearn.datasets import load_diabetes
            from sklearn.linear_model import LinearRegression
            X, y = load_diabetes(return_X_y=True)
            model = LinearRegression().fit(X, y)
            print(model.predict(X[:3]))
            """
        },
    )
    ws = tmp_path / "ws"
    done = run_cli(
        "run", str(repo), "--workspace", str(ws), "--max-trials", "2", "--target", "0.99", cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    shown = json.loads(run_cli("show", "--workspace", str(ws), "1", "--json", cwd=tmp_path).stdout)
    first, second = shown["trial_list"]
    assert first["metric_name"] == "r2" and first["metric_source"] == "cross_validated"
    assert first["metric_label"] == "cross-validated by mlops (the script measures nothing)"
    assert second["changes"][0] == "LinearRegression -> Ridge(alpha=0.1)"  # the tuner's first guess
    assert second["metric_source"] == "cross_validated" and not shown["reached"]  # R² is held to 0.99
    history = run_cli("history", "--workspace", str(ws), cwd=tmp_path).stdout
    assert "** cross-validated by mlops (the script measures nothing)" in history
    (line,) = [
        json.loads(x)
        for x in run_cli("history", "--workspace", str(ws), "--json", cwd=tmp_path).stdout.splitlines()
    ]
    assert line["best_metric_label"] == "cross-validated by mlops (the script measures nothing)"
    report = Path(line["report"]).read_text()
    assert report.count("cross-validated by mlops (the script measures nothing)") >= 3  # verdict and rows
    page = run_cli("history", "--workspace", str(ws), "--html", cwd=tmp_path).stdout.strip()
    assert "cross-validated by mlops (the script measures nothing)" in Path(page).read_text()


@pytest.mark.slow
def test_a_keras_fit_never_evaluated_keeps_its_training_accuracy_and_says_so(tmp_path):
    done, out = run_harness(
        tmp_path,
        """
        import keras
        from sklearn.datasets import load_digits
        X, y = load_digits(return_X_y=True)
        model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(X / 16.0, y, epochs=2, verbose=0)
        print(model.predict(X[:1] / 16.0, verbose=0).argmax())
        """,
    )
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    metrics = read(out, "metrics.json")
    assert metrics["source"] == "train_accuracy" and metrics["value"] == metrics["history"][-1]["accuracy"]
    assert "the script measures nothing (no evaluate, no validation data)" in done.stdout
