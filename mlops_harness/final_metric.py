"""The trial's metric once the script has ended: what it measured, else what it wrote or printed, else a
cross-validated score of what it fitted (see metrics.py for the choice among what it measured)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlops_harness import crossval
from mlops_harness.guards import Guards
from mlops_harness.metrics import Origin, choose_fallback, choose_metric_and_origin, read_accuracy_file
from mlops_harness.protocol import SOURCE_TRAIN_ACCURACY
from mlops_harness.recorder import Recorder, say


def final_metric(
    rec: Recorder, ended_ok: bool, folder: Path, guards: Guards, seed: int | None
) -> tuple[dict[str, Any] | None, Origin]:
    """The trial's metric once the script has ended, and where it came from: what the script measured (see
    metrics.choose_metric_and_origin); else, when it ended well, an accuracy it wrote to a file; else the
    metric it printed or logged (a PyTorch script's accuracy line, Lightning's validation metrics); else the
    cross-validated score of the last estimator it fitted (it trains, but measures nothing)."""
    chosen, origin = choose_metric_and_origin(rec) or (None, ("file", None))
    if chosen is not None and chosen["source"] == SOURCE_TRAIN_ACCURACY:
        say("the script measures nothing (no evaluate, no validation data): its metric is the accuracy "
            "of its last fit on its own training data")  # fmt: skip
    if chosen is None and ended_ok:
        found = read_accuracy_file(folder, guards.written_files())
        if found:
            return {"metric": "accuracy", "value": found[0], "source": f"file:{found[1]}"}, origin
    if chosen is None:  # what a PyTorch script printed, Lightning's validation metrics, a regression's loss
        chosen, origin = choose_fallback(rec) or (None, origin)
    if chosen is not None or not ended_ok:
        return chosen, origin
    measured = crossval.cross_validate(rec, seed, say)
    if measured is None:
        return None, origin
    chosen, origin = choose_metric_and_origin(rec) or (None, origin)
    if chosen is not None:
        chosen["cross_validation"] = measured[0]
    return chosen, origin


NO_METRIC = (
    "the script finished but produced no metric: no Keras evaluate/fit accuracy, no scikit-learn score, "
    "no clustering, and no accuracy.txt written"
)
NO_METRIC_TORCH = (
    "the script trained but measured nothing mlops can read: looked for Lightning's Trainer.test/validate "
    "metrics, a torchmetrics metric's compute(), a sklearn.metrics call (accuracy_score, r2_score), an "
    "accuracy.txt, and a line it printed after training naming its accuracy ('Accuracy: 97.8 %', "
    "'acc=0.978') or its loss; evaluate the model on held-out data and print or save the accuracy"
)


def measured(rec: Recorder, chosen: dict[str, Any]) -> bool:
    """True when the chosen metric was measured by the script's own call (evaluate, score, a metric
    function, a clustering), not read from the last epoch of a fit that the script never evaluated."""
    return (
        any(o["source"] == chosen.get("source") for o in rec.observations) or chosen.get("source") == "kmeans"
    )
