"""Optional MLflow logging, against a real local MLflow store (SQLite)."""

from __future__ import annotations

import json

from mlflow.tracking import MlflowClient

from tests.conftest import run_cli
from tests.test_report import KMEANS


def test_runs_and_trials_are_logged_to_mlflow_when_a_tracking_uri_is_set(repo_factory, tmp_path):
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
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("mlops")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if r.info.run_name == run["run"])
    assert parent.data.params["kind"] == "kmeans" and parent.data.tags["mlops.commit"] == run["commit"]
    assert parent.data.metrics["best_silhouette"] == run["best_metric"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == run["trials"]
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
