"""An honest metric for a script that trains a scikit-learn model and never measures it.

The script fits a classifier or a regressor and prints its predictions (or answers a prompt with one), so
nothing it did says how good the model is. Once it has ended, a *clone* of the last estimator it fitted is
cross-validated on the data it was fitted on: k folds (5, fewer for tiny data; stratified for a
classifier), shuffled with the trial's seed, scored by accuracy for a classifier and R² for a regressor.
The score is the mean over the folds, its source ``protocol.SOURCE_CROSS_VALIDATED``; the model saved is the
one the script fitted (on all its data), which the folds' clones stand for. Nothing runs while the script
does, so nothing it observes changes.

The folds are bounded in time: a fit so slow that two folds would not fit in :data:`BUDGET_S` is not
cross-validated (said, and the trial has no metric, as before), and the folds stop once the budget is spent
(the mean of those done, at least two, and how many of k they were, is the metric).

Standard library only at import: scikit-learn and numpy are imported when a fit is measured, by which
time the script has imported them itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from mlops_harness.protocol import SOURCE_CROSS_VALIDATED
from mlops_harness.recorder import Recorder

FOLDS = 5
MIN_TEST = 2  # samples in each fold's test part (R² of one sample is not defined)
BUDGET_S = 120.0  # the most the folds may take together, after the script has ended
FOLD_COST = 0.8  # a fold fits on (k-1)/k of the data: its time, as a share of the script's own fit


def folds_for(samples: int, smallest_class: int | None) -> int:
    """How many folds: 5, fewer when the data is tiny (each test part of at least MIN_TEST samples) or a
    class has fewer members than 5 (stratified folds need one of each class per fold); 0: too few."""
    k = min(FOLDS, samples // MIN_TEST)
    if smallest_class is not None and smallest_class >= 2:
        k = min(k, smallest_class)
    return k if k >= 2 else 0


def cross_validate(
    rec: Recorder, seed: int | None, say: Callable[[str], None]
) -> tuple[dict[str, Any], Any] | None:
    """The cross-validated score of a clone of the last classifier or regressor the script fitted (and the
    fitted model itself), or None when there is none or it cannot be measured (said)."""
    fit = rec.last_fit
    if fit is None:
        return None
    from sklearn.base import is_classifier, is_regressor

    model, x, y, seconds = fit["model"], fit["X"], fit["y"], fit["seconds"]
    classifier = is_classifier(model)
    if not classifier and not is_regressor(model):
        return None
    name = type(model).__name__
    if seconds * FOLD_COST * 2 > BUDGET_S:
        say(f"note: the script measures nothing, and its {name} took {seconds:.0f} s to fit: "
            f"cross-validating it would take longer than the {BUDGET_S:.0f} s mlops gives it")  # fmt: skip
        return None
    rec.in_harness = True
    try:
        found = _folds(model, x, y, classifier, seed or 0)
    except Exception as e:  # noqa: BLE001 (the script's model and data, in a way mlops did not foresee)
        say(f"warning: could not cross-validate the {name}: {type(e).__name__}: {e}")
        return None
    finally:
        rec.in_harness = False
    if found is None:
        say(
            f"note: the script measures nothing, and its {name} was fitted on too few samples to cross-validate"
        )
        return None
    metric = "accuracy" if classifier else "r2"
    value = sum(found["scores"]) / len(found["scores"])
    found["scores"] = [round(s, 6) for s in found["scores"]]
    rec.observe(metric, value, SOURCE_CROSS_VALIDATED, model=model)
    found.update(estimator=name, seed=seed or 0)
    shown = f"{found['folds']} of {found['of']}" if found["folds"] < found["of"] else str(found["of"])
    say(f"the script measures nothing: its {name} cross-validated by mlops, {shown} folds, "
        f"{metric}={value:.4f}")  # fmt: skip
    return found, model


def _folds(model: Any, x: Any, y: Any, classifier: bool, seed: int) -> dict[str, Any] | None:
    """Score a clone of ``model`` on each fold, one fold at a time, until the folds or the budget end."""
    import numpy as np
    from sklearn.base import clone
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score

    labels = np.asarray(y)
    samples = len(labels)
    smallest = None
    if classifier and labels.ndim == 1:
        smallest = int(np.unique(labels, return_counts=True)[1].min())
    k = folds_for(samples, smallest)
    if k == 0:
        return None
    stratified = smallest is not None and smallest >= 2
    splitter = StratifiedKFold if stratified else KFold
    splits = list(splitter(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(samples), labels))
    scoring = "accuracy" if classifier else "r2"
    scores: list[float] = []
    started = time.monotonic()
    for train, test in splits:
        score = cross_val_score(clone(model), x, y, cv=[(train, test)], scoring=scoring, error_score="raise")
        scores.append(float(score[0]))
        spent = time.monotonic() - started
        if len(scores) >= 2 and spent + spent / len(scores) > BUDGET_S:
            break
    return {
        "folds": len(scores),
        "of": k,
        "stratified": stratified,
        "scoring": scoring,
        "scores": scores,
        "samples": samples,
        "seconds": round(time.monotonic() - started, 3),
    }
