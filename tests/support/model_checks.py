"""How a user checks the model a run gave back: load ``runs/<run>/model/`` in a fresh process and measure it
on the script's own test split, the way the script measured it.

Each recipe rebuilds the test data of one example model (``models/``) or weak model
(``bench/weak_models/``) exactly as the script makes it; the tweaks never touch that code, so it holds for
the best trial too. The recipe gets ``model`` (loaded with ``keras.models.load_model`` or ``joblib.load``,
nothing else) and sets ``value``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

LOAD = """
import sys
import numpy as np
path = sys.argv[1]
if path.endswith(".keras"):
    import keras
    model = keras.models.load_model(path)
else:
    import joblib
    model = joblib.load(path)


def accuracy(X, y):
    out = model.predict(X, verbose=0) if path.endswith(".keras") else model.predict(X)
    return float(np.mean((np.argmax(out, axis=1) if out.ndim > 1 else out) == y))
"""

RECIPES = {
    # models/
    "cnn.py": """
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
digits = load_digits()
X = (digits.images.astype("float32") / 16.0).reshape(-1, 8, 8, 1)
_, X_test, _, y_test = train_test_split(X, digits.target, test_size=0.25, random_state=42)
value = accuracy(X_test, y_test)
""",
    "ann.py": """
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
X, y = load_digits(return_X_y=True)
X_train, X_test, _, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
value = accuracy(StandardScaler().fit(X_train).transform(X_test), y_test)
""",
    "kmeans.py": """
from sklearn.datasets import make_blobs
from sklearn.metrics import silhouette_score
X, _ = make_blobs(n_samples=600, centers=5, cluster_std=0.7, random_state=7)
value = float(silhouette_score(X, model.predict(X)))
""",
    # bench/weak_models/
    "cnn_4_filters.py": """
import math
from sklearn.datasets import load_digits
digits = load_digits()
X, y = digits.images[..., np.newaxis] / 16.0, digits.target
split = int(math.floor(len(X) * (1 - 0.25)))  # fit's validation_split=0.25: Keras keeps the last quarter
value = accuracy(X[split:], y[split:])
""",
    "dense_3_units.py": """
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
X, y = load_digits(return_X_y=True)
_, X_test, _, y_test = train_test_split(X / 16.0, y, test_size=0.25, random_state=1)
value = accuracy(X_test, y_test)
""",
    "functional_api.py": """
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
X, y = load_wine(return_X_y=True)
_, X_test, _, y_test = train_test_split(StandardScaler().fit_transform(X), y, test_size=0.3, random_state=0)
value = accuracy(X_test, y_test)
""",
    "sklearn_mlp.py": """
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
X, y = load_digits(return_X_y=True)
_, X_test, _, y_test = train_test_split(X / 16.0, y, random_state=0)
value = float(model.score(X_test, y_test))
""",
    "kmeans_blobs.py": """
from sklearn.datasets import make_blobs
from sklearn.metrics import silhouette_score
X, _ = make_blobs(n_samples=800, centers=6, cluster_std=0.8, random_state=11)
value = float(silhouette_score(X, model.predict(X)))
""",
    "kmeans_iris.py": """
from sklearn.datasets import load_iris
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import StandardScaler
X = StandardScaler().fit_transform(load_iris().data)
value = float(silhouette_score(X, model.predict(X)))
""",
}
# Within what the measured metric must equal the reported one: a pickle holds the very numbers; Keras
# computes its accuracy in float32 batches.
TOLERANCE = {"sklearn": 1e-6, "keras": 1e-4}


def program(script: str) -> str:
    return LOAD + RECIPES[script] + "\nprint(repr(value))\n"


def fresh_python(code: str, *args: str, env: dict[str, str] | None = None) -> str:
    """Run ``code`` (with ``args`` as sys.argv[1:]) in a new interpreter; the last line it printed."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(env or {})),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def measure(model_path: Path, script: str) -> float:
    """The metric of the saved model on ``script``'s own test split, measured in a fresh process."""
    return float(fresh_python(program(script), str(model_path)))


def assert_model_gives_its_metric(run: dict, measure_with=measure) -> dict:
    """``run`` (a line of ``mlops history --json``): its model loads, and measures what the run reported."""
    assert run["model"], f"run {run['run']} has no model"
    path = Path(run["model"])
    card = json.loads((path.parent / "model.json").read_text())
    assert card["check"]["loaded"] is True and card["check"]["predicted"] is True, card["check"]
    assert card["metric"]["value"] == run["best_metric"] and card["trial"]["number"] == run["best_trial"]
    measured = measure_with(path, Path(run["script"]).name)
    tolerance = TOLERANCE[card["framework"]]
    assert abs(measured - run["best_metric"]) <= tolerance, (run["script"], measured, run["best_metric"])
    return card
