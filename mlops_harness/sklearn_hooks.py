"""scikit-learn instrumentation: the scores the user's code computes, the data it loads, its KMeans fits.

Standard library only at import: each ``install_*`` gets the sklearn module its post-import hook fired
for, and ``measure_kmeans`` imports numpy and scikit-learn itself, after the script has run.
"""

from __future__ import annotations

import functools
import inspect
import threading
import time
from collections.abc import Callable
from typing import Any

from mlops_harness.recorder import Recorder

CURVE_MAX_K = 10
CURVE_SAMPLE = 2000
METRIC_FUNCTIONS = (
    ("accuracy_score", "accuracy"),
    ("silhouette_score", "silhouette"),
    ("adjusted_rand_score", "ari"),
    ("r2_score", "r2"),
)
PREDICTED = ("accuracy", "r2")  # metrics of a model's predictions (not of a clustering's labels)


def install_base(base: Any, rec: Recorder) -> None:
    """A classifier's ``score`` (accuracy) and a regressor's (R²), when the user's code calls them, with
    the model measured; and every estimator class defined from now on has its ``fit`` and ``predict``
    followed (what it was fitted on, which prediction it made)."""

    def wrap_score(original: Callable[..., Any], name: str, source: str) -> Callable[..., Any]:
        def score(self: Any, *args: Any, **kwargs: Any) -> Any:
            with rec.measuring() as outermost:
                value = original(self, *args, **kwargs)
            if outermost and rec.called_from_user():
                rec.observe(name, value, source, model=rec.outermost_model(self))
            return value

        return score

    base.ClassifierMixin.score = wrap_score(base.ClassifierMixin.score, "accuracy", "score")
    base.RegressorMixin.score = wrap_score(base.RegressorMixin.score, "r2", "score")
    _follow_subclasses(base.BaseEstimator, rec)


def _follow_subclasses(root: Any, rec: Recorder) -> None:
    """Wrap ``fit`` and ``predict`` of every class derived from ``root`` after this (scikit-learn's own
    estimators are defined when the script imports them, after ``sklearn.base``; so are the user's)."""
    own = root.__dict__.get("__init_subclass__")
    depth = threading.local()

    def init_subclass(cls: Any, /, **kwargs: Any) -> None:
        if own is not None:
            own.__func__(cls, **kwargs)
        else:
            super(root, cls).__init_subclass__(**kwargs)
        for name, wrap in (("fit", _wrap_fit), ("predict", _wrap_predict)):
            method = inspect.getattr_static(cls, name, None)
            if inspect.isfunction(method) and not getattr(method, "_mlops_hooked", False):
                wrapped = functools.wraps(method)(wrap(method, rec, depth))
                wrapped._mlops_hooked = True  # type: ignore[attr-defined]
                rec.models.hooked(cls, name, cls.__dict__.get(name))
                setattr(cls, name, wrapped)

    root.__init_subclass__ = classmethod(init_subclass)


def _outermost_call(depth: threading.local, call: Callable[[], Any]) -> tuple[Any, bool]:
    """``call()``'s result, and whether it was the outermost followed call on this thread (a pipeline's
    ``fit`` fits its steps: only the pipeline's counts)."""
    level: int = getattr(depth, "level", 0)
    depth.level = level + 1
    try:
        return call(), level == 0
    finally:
        depth.level = level


def _wrap_fit(original: Callable[..., Any], rec: Recorder, depth: threading.local) -> Callable[..., Any]:
    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        result, outermost = _outermost_call(depth, lambda: original(self, *args, **kwargs))
        if outermost and not rec.in_harness and rec.called_from_user():
            model = rec.outermost_model(self)
            x = args[0] if args else kwargs.get("X")
            rec.models.fitted(model, x)
            y = args[1] if len(args) > 1 else kwargs.get("y")
            if model is self and y is not None and x is not None and hasattr(self, "predict"):
                # what a cross-validation needs, should the script never measure it (see crossval.py)
                rec.last_fit = {"model": self, "X": x, "y": y, "seconds": time.perf_counter() - started}
        return result

    return fit


def _wrap_predict(original: Callable[..., Any], rec: Recorder, depth: threading.local) -> Callable[..., Any]:
    def predict(self: Any, *args: Any, **kwargs: Any) -> Any:
        result, outermost = _outermost_call(depth, lambda: original(self, *args, **kwargs))
        if outermost and not rec.in_harness and rec.called_from_user():
            rec.models.predicted(rec.outermost_model(self), result)
        return result

    return predict


def install_metrics(metrics: Any, rec: Recorder) -> None:
    """``accuracy_score``, ``silhouette_score``, ``adjusted_rand_score`` and ``r2_score`` the user's code calls."""

    def wrap(original: Callable[..., Any], name: str) -> Callable[..., Any]:
        def metric(*args: Any, **kwargs: Any) -> Any:
            with rec.measuring() as outermost:
                value = original(*args, **kwargs)
            if outermost and not rec.in_harness and rec.called_from_user():
                # accuracy_score(y, model.predict(X)): the model whose prediction was scored
                model = rec.models.producer(*args, *kwargs.values()) if name in PREDICTED else None
                rec.observe(name, value, original.__name__, model=model)
            return value

        return functools.update_wrapper(metric, original, assigned=("__name__",), updated=())

    for func, name in METRIC_FUNCTIONS:
        if hasattr(metrics, func):
            setattr(metrics, func, wrap(getattr(metrics, func), name))


def install_cluster(cluster: Any, rec: Recorder) -> None:
    """Remember every KMeans fit of the script (its data and model), measured after it ends."""

    def wrap(original: Callable[..., Any], estimator: str) -> Callable[..., Any]:
        def fit(self: Any, X: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N803
            model = original(self, X, *args, **kwargs)
            if not rec.in_harness:
                rec.models.fitted(self, X)
                rec.kmeans.append({"X": X, "model": self, "estimator": estimator})
                if len(rec.kmeans) > 50:  # a user's own elbow loop; keep the first and the last
                    del rec.kmeans[1:-1]
            return model

        return fit

    for cls_name in ("KMeans", "MiniBatchKMeans"):
        cls = getattr(cluster, cls_name, None)
        if cls is not None:
            cls.fit = wrap(cls.fit, cls_name)


def install_datasets(datasets: Any, rec: Recorder) -> None:
    """Remember labelled data the script loads, so a clustering of it can report its adjusted Rand index."""

    def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
        def load(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            try:
                if isinstance(result, tuple) and len(result) >= 2:
                    rec.datasets.append((result[0], result[1]))
                elif hasattr(result, "data") and hasattr(result, "target"):
                    rec.datasets.append((result.data, result.target))
            except Exception:  # noqa: BLE001
                pass
            return result

        return load

    for name in dir(datasets):
        if name.startswith(("load_", "make_")) and name not in ("load_files", "load_svmlight_file"):
            setattr(datasets, name, wrap(getattr(datasets, name)))


def measure_kmeans(rec: Recorder, seed: int | None) -> dict[str, Any] | None:
    """Silhouette of the script's final clustering, the WCSS curve for k = 2..10, and ARI if labelled."""
    if not rec.kmeans:
        return None
    import numpy as np
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, silhouette_score

    last = rec.kmeans[-1]
    X = np.asarray(last["X"], dtype=float)  # noqa: N806
    model = last["model"]
    labels = getattr(model, "labels_", None)
    rng = np.random.default_rng(seed or 0)
    sample = rng.choice(len(X), size=min(len(X), CURVE_SAMPLE), replace=False)
    result: dict[str, Any] = {
        "estimator": last["estimator"],
        "n_clusters": int(getattr(model, "n_clusters", 0)),
        "inertia": float(getattr(model, "inertia_", float("nan"))),
        "n_samples": len(X),
    }
    rec.in_harness = True
    try:
        if labels is not None and 1 < len(set(labels.tolist())) < len(X):
            result["silhouette"] = float(silhouette_score(X[sample], labels[sample]))
        ks: list[int] = []
        inertias: list[float] = []
        silhouettes: list[float] = []
        for k in range(2, min(CURVE_MAX_K, len(X) - 1) + 1):
            km = KMeans(n_clusters=k, n_init=4, random_state=seed or 0).fit(X)
            ks.append(k)
            inertias.append(float(km.inertia_))
            silhouettes.append(float(silhouette_score(X[sample], km.labels_[sample])))
        result["curve"] = {"k": ks, "inertia": inertias, "silhouette": silhouettes}
        truth = [y for (data, y) in rec.datasets if _rows(data) == len(X)]
        if labels is not None and len(truth) >= 1:
            result["ari"] = float(adjusted_rand_score(np.asarray(truth[-1]), labels))
    finally:
        rec.in_harness = False
    if "silhouette" in result:
        rec.observe("silhouette", result["silhouette"], "kmeans", model=model)
    if "ari" in result:
        rec.observe("ari", result["ari"], "kmeans", model=model)
    return result


def _rows(data: Any) -> int:
    try:
        return len(data)
    except TypeError:
        return -1
