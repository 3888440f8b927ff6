"""The knobs of scikit-learn estimators that the strategies turn: the strength of their regularization
(``alpha``, ``C``; a LinearRegression becomes a Ridge regression), the depth of their trees, how many trees,
how many neighbours. Which estimator takes which is :data:`mlops.vocabulary.SKLEARN_TUNED`; this module says
the values tried, the first guess, and the tweaks a point of the search makes. A knob the script computes
(``max_depth=depth``, read from a prompt or a file) is left to it: its answers are tuned instead.

The same knobs serve classifiers and regressors: a regressor's metric is its R² (on the script's own
test data, or cross-validated by mlops when the script measures nothing), and the target applies to it.
"""

from __future__ import annotations

from typing import Any

from mlops.vocabulary import SKLEARN_TUNED
from tweak.codemods import RegularizeLinear, SetEstimatorParam, Tweak

RIDGE = "ridge_alpha"  # a LinearRegression made a Ridge regression of this alpha
STRENGTHS = (0.01, 0.1, 1.0, 10.0, 100.0)
CHOICES: dict[str, tuple[Any, ...]] = {
    "alpha": STRENGTHS,
    "C": STRENGTHS,
    "max_depth": (2, 4, 6, 8, 12, 16, None),  # None: grown until its leaves are pure
    "n_estimators": (50, 100, 200, 400),
    "n_neighbors": (3, 5, 9, 15, 25),
    RIDGE: STRENGTHS,
}
# The first guess: what does better than scikit-learn's defaults more often than not on the small tabular
# data these scripts train on (milder penalties, more trees); a tree's depth only for a single tree, which
# grows until it learns its training data by heart.
FIRST: dict[str, Any] = {"alpha": 0.1, "C": 10.0, "n_estimators": 200, "n_neighbors": 9, RIDGE: 0.1}
SINGLE_TREES = ("DecisionTreeClassifier", "DecisionTreeRegressor")
SINGLE_TREE_DEPTH = 8


def _estimators(facts: Any) -> list[Any]:
    return list(getattr(facts, "estimators", []) or [])


def tuned(facts: Any) -> dict[str, tuple[str, ...]]:
    """Each knob the code lets the tuner turn, with the estimator classes that take it (in order)."""
    found: dict[str, list[str]] = {}
    for est in _estimators(facts):
        if est.name == "LinearRegression":
            found.setdefault(RIDGE, []).append(est.name)
        for param in SKLEARN_TUNED.get(est.name, ()):
            if param not in getattr(est, "computed", frozenset()) and est.name not in found.get(param, []):
                found.setdefault(param, []).append(est.name)
    return {param: tuple(names) for param, names in found.items()}


def space(facts: Any) -> dict[str, Any]:
    """The search space of the knobs (Optuna distributions; values from :data:`CHOICES`)."""
    import optuna.distributions as d

    return {param: d.CategoricalDistribution(CHOICES[param]) for param in tuned(facts)}


def first(facts: Any) -> dict[str, Any]:
    """The first guess for the knobs the code has (see :data:`FIRST`)."""
    point: dict[str, Any] = {}
    for param, names in tuned(facts).items():
        if param == "max_depth":
            if any(n in SINGLE_TREES for n in names):
                point[param] = SINGLE_TREE_DEPTH
        elif param in FIRST:
            point[param] = FIRST[param]
    return point


def steps(facts: Any) -> list[Tweak]:
    """The ladder's steps: the first guess, one knob at a time."""
    return tweaks_for(facts, first(facts))


# scikit-learn's defaults of the knobs (a knob the script does not write is at its default: a point that sets
# it there changes nothing). GradientBoosting's trees are shallow by default; AdaBoost's are fewer.
DEFAULTS: dict[str, Any] = {"alpha": 1.0, "C": 1.0, "max_depth": None, "n_estimators": 100, "n_neighbors": 5}
OTHER_DEFAULTS: dict[tuple[str, str], Any] = {
    ("GradientBoostingClassifier", "max_depth"): 3,
    ("GradientBoostingRegressor", "max_depth"): 3,
    ("AdaBoostClassifier", "n_estimators"): 50,
    ("AdaBoostRegressor", "n_estimators"): 50,
}


def _written(facts: Any, names: tuple[str, ...], param: str) -> list[Any]:
    """The value each estimator of ``names`` has for ``param``: as written, else scikit-learn's default."""
    return [
        est.params.get(param, OTHER_DEFAULTS.get((est.name, param), DEFAULTS.get(param, ...)))
        for est in _estimators(facts)
        if est.name in names
    ]


def tweaks_for(facts: Any, point: dict[str, Any]) -> list[Tweak]:
    """The tweaks that set the point's knobs; a knob every estimator already has at that value is left."""
    tweaks: list[Tweak] = []
    for param, names in tuned(facts).items():
        if param not in point:
            continue
        value = point[param]
        if param == RIDGE:
            tweaks.append(RegularizeLinear(alpha=float(value)))
        elif any(written != value for written in _written(facts, names, param)):
            tweaks.append(SetEstimatorParam(estimators=names, param=param, value=value))
    return tweaks
