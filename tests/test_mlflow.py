"""Optional MLflow logging, against a real local MLflow store (SQLite) read back with MLflow's client."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from mlops.ledger import Ledger, RunRecord
from mlops.mlflow_log import epoch_metrics, log_run
from mlops.report import write_junit, write_report
from tests.support.model_checks import fresh_python
from tests.support.processes import run_cli
from tests.support.recorded import Variant, record_run
from tests.support.scripts import CLASSIFIER, KERAS, TWEAK
from tests.support.scripts import KMEANS_LABELLED as KMEANS

SKLEARN = {"kind": "other", "family": "classic", "framework": "sklearn", "image": "mlops-sklearn"}


def logged(tmp_path: Path, ledger: Ledger, run: RunRecord) -> tuple[Any, Any, list[Any]]:
    from mlflow.tracking import MlflowClient  # imported here: mlflow takes seconds to import

    write_report(ledger, run.id)
    write_junit(ledger, run.id)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parent_id = log_run(ledger, run.id, uri, artifact_location=(tmp_path / "artifacts").as_uri())
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("mlops")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if r.info.run_id == parent_id)
    children = sorted(
        (r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent_id),
        key=lambda r: int(r.data.tags["mlops.trial"]),
    )
    return client, parent, children


@pytest.mark.slow
def test_a_run_and_its_trials_are_logged_as_nested_runs_with_tweaks_metrics_and_files(tmp_path):
    better = CLASSIFIER.replace("C=1e-05", "C=1.0")
    broken = CLASSIFIER.replace("max_iter=200", "max_iter=200, solver='sgd'")
    variants = [Variant(CLASSIFIER), Variant(better, ["C 1e-05 -> 1.0"], [TWEAK]), Variant(broken)]
    ledger, run = record_run(tmp_path / "run", "clf.py", variants, SKLEARN, target=0.9)
    trials = ledger.trials(run.id)
    client, parent, children = logged(tmp_path, ledger, run)

    assert parent.info.run_name == run.id and parent.info.status == "FINISHED"
    assert parent.data.params["kind"] == "other" and parent.data.params["target"] == "0.9"
    assert parent.data.tags["mlops.commit"] == run.commit == parent.data.tags["mlflow.source.git.commit"]
    assert parent.data.metrics == {"best_accuracy": run.best_metric, "baseline_accuracy": trials[0].metric}
    assert parent.info.start_time == int(run.created_at * 1000)
    files = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert files == {"report.html", "junit.xml", "best.py", "best.diff", "model"}

    assert [c.info.status for c in children] == ["FINISHED", "FINISHED", "FAILED"]
    assert [c.data.metrics.get("accuracy") for c in children] == [t.metric for t in trials]
    assert children[1].data.params["tweak.0.set_estimator_param.C"] == "1.0"
    assert children[1].data.params["changes"] == "C 1e-05 -> 1.0"
    assert children[0].data.params["changes"] == "as pushed"
    assert "solver" in children[2].data.tags["mlops.error"]
    assert {a.path for a in client.list_artifacts(children[1].info.run_id)} == {"source.py"}


def test_epochs_of_several_fits_get_one_step_each_in_order():
    history = [
        {"fit": 1, "epoch": 1, "loss": 0.5},
        {"fit": 0, "epoch": 2, "loss": 0.9},
        {"fit": 0, "epoch": 1, "loss": 1.0, "accuracy": 0.2},
    ]
    assert epoch_metrics(history) == [
        ("epoch_loss", 1.0, 1),
        ("epoch_accuracy", 0.2, 1),
        ("epoch_loss", 0.9, 2),
        ("epoch_loss", 0.5, 3),
    ]


@pytest.mark.slow
def test_per_epoch_metrics_of_a_keras_trial_are_logged_by_step(tmp_path):
    keras = {"kind": "ann", "family": "dense", "framework": "keras", "image": "mlops-keras3"}
    ledger, run = record_run(tmp_path / "run", "net.py", [Variant(KERAS)], keras)
    (trial,) = ledger.trials(run.id)
    history = json.loads((run.dir / "trials" / "0" / "metrics.json").read_text())["history"]
    client, _, (child,) = logged(tmp_path, ledger, run)
    for key in ("accuracy", "val_accuracy", "loss", "val_loss"):
        logged_epochs = sorted(
            client.get_metric_history(child.info.run_id, f"epoch_{key}"), key=lambda m: m.step
        )
        assert [(m.step, m.value) for m in logged_epochs] == [(r["epoch"], r[key]) for r in history]
    assert len(history) == trial.epochs == 4
    assert child.data.metrics["accuracy"] == trial.metric  # the evaluate accuracy, not the last epoch's


@pytest.mark.slow
def test_mlops_run_logs_to_mlflow_once_when_a_tracking_uri_is_set(repo_factory, tmp_path):
    repo = repo_factory({"clusters.py": KMEANS})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ws = ["--workspace", str(tmp_path / "ws")]
    done = run_cli(
        "run", str(repo), "--runtime", "local", *ws, cwd=tmp_path, env={"MLFLOW_TRACKING_URI": uri}
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "logged to MLflow (sqlite) as run" in done.stdout
    (run,) = [
        json.loads(line) for line in run_cli("history", "--json", *ws, cwd=tmp_path).stdout.splitlines()
    ]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("mlops")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if r.info.run_name == run["run"])
    assert parent.data.params["kind"] == "kmeans" and parent.data.tags["mlops.commit"] == run["commit"]
    assert parent.data.metrics["best_silhouette"] == run["best_metric"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == run["trials"]
    assert {c.data.params["n_clusters"] for c in children if c.data.tags["mlops.trial"] != "0"} >= {"4"}
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {
        "report.html",
        "best.py",
        "best.diff",
    }
    again = run_cli(
        "run", str(repo), "--runtime", "local", *ws, cwd=tmp_path, env={"MLFLOW_TRACKING_URI": uri}
    )
    assert again.returncode == 0
    assert len(client.search_runs([experiment.experiment_id])) == len(runs)  # a run is logged once


@pytest.mark.slow
def test_the_best_model_is_logged_as_an_mlflow_model_of_the_sklearn_flavour(tmp_path, monkeypatch):
    import mlflow.sklearn

    # MLflow resolves runs:/ and models:/ addresses with the tracking URI of the environment, as a user has it
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    better = CLASSIFIER.replace("C=1e-05", "C=1.0")
    variants = [Variant(CLASSIFIER), Variant(better, ["C 1e-05 -> 1.0"], [TWEAK])]
    ledger, run = record_run(tmp_path / "run", "clf.py", variants, SKLEARN, target=0.9)
    client, parent, _ = logged(tmp_path, ledger, run)
    (output,) = client.get_run(parent.info.run_id).outputs.model_outputs
    model_info = client.get_logged_model(output.model_id)
    assert model_info.name == "model" and model_info.source_run_id == parent.info.run_id
    assert str(model_info.status).endswith("READY") and model_info.tags["mlops.run"] == run.id
    flavours = {a.path for a in client.list_artifacts(parent.info.run_id, "model")}
    assert {"model/MLmodel", "model/model.pkl", "model/requirements.txt"} <= flavours
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    _, Xte, _, yte = train_test_split(X, y, random_state=0)
    for uri in (f"runs:/{parent.info.run_id}/model", f"models:/{output.model_id}"):
        model = mlflow.sklearn.load_model(uri)
        assert abs(model.score(Xte, yte) - run.best_metric) <= 1e-6


@pytest.mark.slow
def test_a_keras_model_is_logged_with_the_keras_flavour_and_loads_with_mlflow(tmp_path):
    keras = {"kind": "ann", "family": "dense", "framework": "keras", "image": "mlops-keras3"}
    ledger, run = record_run(tmp_path / "run", "net.py", [Variant(KERAS)], keras)
    _, parent, _ = logged(tmp_path, ledger, run)
    accuracy = fresh_python(
        textwrap.dedent(KERAS).split("model = ")[0]
        + "import sys, mlflow.keras, numpy as np\n"
        + "model = mlflow.keras.load_model(sys.argv[1])\n"
        + "print(repr(float(np.mean(np.argmax(model.predict(Xte, verbose=0), axis=1) == yte))))\n",
        f"runs:/{parent.info.run_id}/model",
        env={"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"},
    )
    assert abs(float(accuracy) - run.best_metric) <= 1e-4
