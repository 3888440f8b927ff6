"""How a trial's metric was measured, in words, where the script itself never measured it.

The harness names where each metric came from (``metrics.json``'s ``source``, kept in the ledger as the
trial's ``metric_source``); two sources are metrics the script never measured: a scikit-learn model that
mlops cross-validated after the script ended, and the accuracy a Keras fit logged on its own training data.
The report, ``mlops history`` (and its page) and ``mlops show`` say so with these labels (see
docs/harness.md).
"""

from __future__ import annotations

from mlops.ledger import RunRecord, TrialRecord
from mlops_harness.protocol import SOURCE_CROSS_VALIDATED, SOURCE_TRAIN_ACCURACY

UNMEASURED_LABELS = {
    SOURCE_CROSS_VALIDATED: "cross-validated by mlops (the script measures nothing)",
    SOURCE_TRAIN_ACCURACY: "accuracy on its training data (the script measures nothing)",
}


def metric_label(source: str | None) -> str | None:
    """How a metric the script never measured came about, in words; None for one the script measured."""
    return UNMEASURED_LABELS.get(source or "")


def best_label(run: RunRecord, trials: list[TrialRecord]) -> str | None:
    """The label of the run's best metric (see :func:`metric_label`)."""
    best = next((t for t in trials if t.number == run.best_trial), None)
    return metric_label(best.metric_source) if best is not None else None
