"""Optional: every run and its trials logged to MLflow too, when MLFLOW_TRACKING_URI is set.

A run becomes an MLflow run (parameters, its best and baseline metric, the report, the best source and its
diff as artifacts) with one nested run per trial (what it changed, its metric, per-epoch metrics). MLflow is
imported only here, and only when asked for (``pip install mlflow-skinny``).
"""

from __future__ import annotations

from typing import Any

from mlops.errors import ConfigError
from mlops.ledger import Ledger
from mlops.runtime.base import METRICS_FILE, read_json

EXPERIMENT = "mlops"


def log_run(ledger: Ledger, run_id: str, tracking_uri: str) -> str:
    """Log one finished run and its trials; returns the MLflow run id."""
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as e:
        raise ConfigError(
            "MLFLOW_TRACKING_URI is set but mlflow is not installed (pip install mlflow-skinny)"
        ) from e
    run = ledger.run(run_id)
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(EXPERIMENT)
    tags = {
        "mlops.run": run.id,
        "mlops.source": run.source,
        "mlops.commit": run.commit,
        "mlops.script": run.script,
    }
    parent = client.create_run(experiment_id, run_name=run.id, tags=tags).info.run_id
    params: dict[str, Any] = {
        "kind": run.kind,
        "framework": run.framework,
        "image": run.image,
        "runtime": run.runtime,
        "strategy": run.strategy,
        "target": run.target,
        "max_trials": run.max_trials,
        "status": run.status.value,
    }
    for key, value in params.items():
        client.log_param(parent, key, value)
    for key, value in (
        ("best_" + (run.metric or "metric"), run.best_metric),
        ("baseline_" + (run.metric or "metric"), run.baseline_metric),
    ):
        if value is not None:
            client.log_metric(parent, key, value)
    for name in ("report.html", "best.py", "best.diff", "junit.xml"):
        if (run.dir / name).exists():
            client.log_artifact(parent, str(run.dir / name))
    for trial in ledger.trials(run.id):
        child = client.create_run(
            experiment_id,
            run_name=f"{run.id} trial {trial.number}",
            tags={"mlflow.parentRunId": parent, **tags},
        ).info.run_id
        client.log_param(child, "changes", "; ".join(trial.changes)[:6000] or "as pushed")
        client.log_param(child, "status", trial.status.value)
        if trial.metric is not None:
            client.log_metric(child, trial.metric_name or "metric", trial.metric)
        history = (read_json(run.dir / "trials" / str(trial.number) / METRICS_FILE) or {}).get(
            "history"
        ) or []
        for row in history:
            for key, value in row.items():
                if key not in ("fit", "epoch") and isinstance(value, int | float):
                    client.log_metric(child, key, float(value), step=int(row["epoch"]))
        client.set_terminated(child, "FINISHED" if trial.metric is not None else "FAILED")
    client.set_terminated(parent, "FINISHED")
    return parent
