"""Optional: every run and its trials logged to MLflow too, when MLFLOW_TRACKING_URI is set.

A run becomes an MLflow run (its settings as parameters, its best and baseline metric, the report, the JUnit
XML, the best source and its diff as artifacts, and its model as an MLflow model of the Keras or
scikit-learn flavour, see ``mlflow_model.py``) with one nested run per trial (the tweaks and the strategy's
parameters, its metric, the per-epoch metrics, its source). Times are the ledger's, so MLflow shows when
the training really ran. MLflow is imported only here, and only when asked for (``pip install
mlflow-skinny``); the caller reads the tracking URI once and passes it in.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mlops import trial_records
from mlops.errors import ConfigError
from mlops.layout import SOURCE, RunLayout
from mlops.ledger import Ledger, RunRecord, TrialRecord
from mlops.mlflow_model import log_model
from mlops.progress import Said
from mlops.trial_files import BadTrialFile
from mlops.trial_records import Metrics

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

EXPERIMENT = "mlops"
# MLflow's own limits: a batch holds at most 1000 metrics and 100 parameters; a value at most 6000 chars.
MAX_METRICS, MAX_PARAMS, MAX_VALUE = 1000, 100, 6000
_BAD_KEY = re.compile(r"[^\w\-. /]")
T = TypeVar("T")


def _key(name: str) -> str:
    return _BAD_KEY.sub("_", name)[:250]


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _ms(seconds: float | None) -> int | None:
    return int(seconds * 1000) if seconds is not None else None


def run_params(run: RunRecord) -> dict[str, Any]:
    return {
        "script": run.script,
        "kind": run.kind,
        "framework": run.framework,
        "image": run.image,
        "runtime": run.runtime,
        "strategy": run.strategy,
        "target": run.target,
        "max_trials": run.max_trials,
        "seed": run.settings.seed,
    }


def trial_params(run: RunRecord, trial: TrialRecord) -> dict[str, Any]:
    """What the trial changed: the strategy's parameters (``n_clusters``) and each tweak with its arguments."""
    folder = RunLayout(run.dir).trial(trial.number).dir
    try:
        params: dict[str, Any] = dict(trial_records.params(folder))
    except BadTrialFile:  # the trial failed for it
        params = {}
    for i, tweak in enumerate(trial.tweaks):
        name, args = (tweak[0], tweak[1] if len(tweak) > 1 else {}) if tweak else ("tweak", {})
        label = f"tweak.{i}.{name}" + (
            f".{args['param']}" if isinstance(args, dict) and "param" in args else ""
        )
        value = args.get("value", args) if isinstance(args, dict) else args
        params[label] = value if isinstance(value, str | int | float) else json.dumps(value, default=str)
    params["changes"] = "; ".join(trial.changes) or "as pushed"
    params["status"] = trial.status.value
    params["seed"] = trial.seed
    return params


def _left(folder: Path) -> tuple[Metrics, str | None]:
    """A trial's metrics and source, through the trial reader; nothing of a trial that left something else
    in their place (it failed for it)."""
    try:
        return trial_records.metrics(folder) or Metrics(), trial_records.source(folder)
    except BadTrialFile:
        return Metrics(), None


def epoch_metrics(history: list[dict[str, Any]]) -> list[tuple[str, float, int]]:
    """(key, value, step) per epoch, keys prefixed ``epoch_`` as Keras's TensorBoard callback names them, so
    the training accuracy per epoch is not mistaken for the trial's final (test) accuracy. A second ``fit``
    call goes on counting steps after the first one."""
    rows = sorted(history, key=lambda r: (r.get("fit", 0), r.get("epoch", 0)))
    offsets: dict[int, int] = {}
    step_base = 0
    for fit in sorted({r.get("fit", 0) for r in rows}):
        offsets[fit] = step_base
        step_base += max(r.get("epoch", 0) for r in rows if r.get("fit", 0) == fit)
    out = []
    for row in rows:
        step = offsets[row.get("fit", 0)] + int(row.get("epoch", 0))
        for key, value in row.items():
            if key not in ("fit", "epoch") and isinstance(value, int | float):
                out.append((f"epoch_{key}", float(value), step))
    return out


def log_run(ledger: Ledger, run_id: str, tracking_uri: str, artifact_location: str | None = None) -> str:
    """Log one finished run and its trials to the MLflow at ``tracking_uri``; returns the MLflow run id.

    ``artifact_location`` is used only when the ``mlops`` experiment does not exist yet (with a
    ``sqlite:`` URI MLflow's default is ``./mlruns`` in the current folder).
    """
    client = _client(tracking_uri)
    run = ledger.run(run_id)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    experiment_id = (
        experiment.experiment_id
        if experiment
        else client.create_experiment(EXPERIMENT, artifact_location=artifact_location)
    )
    tags = _tags(run)
    parent = client.create_run(
        experiment_id, start_time=_ms(run.created_at), tags=tags, run_name=run.id
    ).info.run_id
    metric = run.metric or "metric"
    summary = [(f"best_{metric}", run.best_metric), (f"baseline_{metric}", run.baseline_metric)]
    _batch(client, run, parent, run_params(run), [(k, v, 0) for k, v in summary if v is not None])
    for path in RunLayout(run.dir).published():
        if path.exists():
            client.log_artifact(parent, str(path))
    log_model(client, experiment_id, parent, run)
    for trial in ledger.trials(run.id):
        _log_trial(client, experiment_id, {**tags, "mlflow.parentRunId": parent}, run, trial)
    client.set_terminated(parent, "FINISHED", end_time=_ms(run.finished_at))
    return str(parent)


def _client(tracking_uri: str) -> MlflowClient:
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as e:
        raise ConfigError(
            "MLFLOW_TRACKING_URI is set but mlflow is not installed (pip install mlflow-skinny)"
        ) from e
    return MlflowClient(tracking_uri=tracking_uri)


def _tags(run: RunRecord) -> dict[str, str]:
    tags = {
        "mlops.run": run.id,
        "mlops.source": run.source,
        "mlops.commit": run.commit,
        "mlops.script": run.script,
        "mlops.status": run.status.value,
        "mlflow.source.git.commit": run.commit,
    }
    if run.author:
        tags["mlops.author"] = run.author
    return tags


def _batch(
    client: MlflowClient,
    run: RunRecord,
    mlflow_id: str,
    params: dict[str, Any],
    metrics: list[tuple[str, float, int]],
) -> None:
    """Parameters and metrics in batches of MLflow's sizes, the metrics timed at the run's end."""
    from mlflow.entities import Metric, Param

    entries = [Param(_key(k), str(v)[:MAX_VALUE]) for k, v in params.items() if v is not None]
    for params_chunk in _chunks(entries, MAX_PARAMS):
        client.log_batch(mlflow_id, params=params_chunk)
    now = int((run.finished_at or time.time()) * 1000)
    values = [Metric(_key(k), v, now, step) for k, v, step in metrics]
    for chunk in _chunks(values, MAX_METRICS):
        client.log_batch(mlflow_id, metrics=chunk)


def _log_trial(
    client: MlflowClient, experiment_id: str, tags: dict[str, str], run: RunRecord, trial: TrialRecord
) -> None:
    """One trial as a nested run: its parameters, per-epoch metrics and metric, its error, its source."""
    folder = RunLayout(run.dir).trial(trial.number).dir
    child = client.create_run(
        experiment_id,
        start_time=_ms(trial.started_at or run.created_at),
        tags={**tags, "mlops.trial": str(trial.number)},
        run_name=f"{run.id} trial {trial.number}",
    ).info.run_id
    left = _left(folder)
    metrics = epoch_metrics(list(left[0].history))
    if trial.metric is not None:
        metrics.append((trial.metric_name or "metric", trial.metric, 0))
    _batch(client, run, child, trial_params(run, trial), metrics)
    if trial.error:
        client.set_tag(child, "mlops.error", trial.error[:MAX_VALUE])
    if left[1] is not None:  # the text read through the trial reader, never a file it links to
        client.log_text(child, left[1], SOURCE)
    status = "FINISHED" if trial.metric is not None else "FAILED"
    client.set_terminated(child, status, end_time=_ms(trial.finished_at))


def log_run_once(ledger: Ledger, run: RunRecord, tracking_uri: str) -> Said | None:
    """Mirror a finished run to MLflow unless it was mirrored before; the line to show, or None.

    MLflow is an optional mirror: it being down, or refusing the run, never fails the pipeline (the
    line says what went wrong and the run can be mirrored by a later job 5).
    """
    if ledger.run(run.id).mlflow_id is not None:
        return None
    try:
        mlflow_id = log_run(ledger, run.id, tracking_uri)
    except Exception as e:  # noqa: BLE001 (any failure of an optional mirror is a warning, never fatal)
        return Said(f"could not log run {run.id} to MLflow: {type(e).__name__}: {str(e)[:200]}", warning=True)
    ledger.set_mlflow_id(run.id, str(mlflow_id), f"logged to MLflow as run {mlflow_id}")
    return Said(f"   logged to MLflow ({tracking_uri.split('://')[0]}) as run {mlflow_id}")
