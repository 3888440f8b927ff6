"""Models as pushed, one of each kind a strategy tunes, with what their trial 0 measured; and the search
state a strategy sees for them (the strategy contract's cases)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlops.domain import Kind, TrialStatus
from tweak.evidence import curve_of, generalization_gap, training_losses
from tweak.facts import model_facts
from tweak.prompts import Prompt, Role
from tweak.strategies import Past, SearchState

TRIAL_0_METRIC = 0.3


def history(losses: list[float], accuracy: float, val_accuracy: float) -> list[dict[str, Any]]:
    """Trial 0's per-epoch rows as the harness records them (fit 0)."""
    return [
        {"fit": 0, "epoch": n, "loss": loss, "accuracy": accuracy, "val_accuracy": val_accuracy}
        for n, loss in enumerate(losses, start=1)
    ]


@dataclass(frozen=True)
class Case:
    """A model as pushed, and what its trial 0 measured."""

    name: str
    kind: Kind
    framework: str
    source: str
    history: list[dict[str, Any]] = field(default_factory=list)
    kmeans: dict[str, Any] | None = None
    inputs: dict[str, Any] | None = None  # what trial 0's last fit trained on
    asked: tuple[tuple[str, str], ...] = ()  # the script's input() prompts and their answers

    def prompts(self) -> list[Prompt]:
        return [Prompt(i, text, answer, Role.DEPTH) for i, (text, answer) in enumerate(self.asked)]


CASES = [
    Case(
        "cnn",
        Kind.CNN,
        "keras",
        """\
from keras import layers, models
model = models.Sequential([
    layers.Input(shape=(8, 8, 1)),
    layers.Conv2D(4, (3, 3), activation="relu"),
    layers.Flatten(),
    layers.Dense(16, activation="relu"),
    layers.Dense(10, activation="softmax"),
])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(X, y, epochs=3, validation_split=0.2)
""",
        history=history([1.9, 0.8, 0.2], accuracy=0.99, val_accuracy=0.8),
        inputs={"fit": 0, "samples": 1437, "dtype": "uint8", "min": 0.0, "max": 255.0},
    ),
    Case(
        "ann-stalled",
        Kind.ANN,
        "keras",
        """\
import keras
from keras import layers
model = keras.Sequential([
    layers.Input(shape=(64,)),
    layers.Dense(8, activation="relu"),
    layers.Dense(10, activation="softmax"),
])
model.compile(optimizer=keras.optimizers.SGD(learning_rate=1e-5), loss="sparse_categorical_crossentropy")
model.fit(X, y, epochs=2, validation_split=0.2)
""",
        history=history([2.31, 2.30], accuracy=0.11, val_accuracy=0.1),
    ),
    Case(
        "ann-roomy",  # already as wide and as long as TPE's first guess would make it
        Kind.ANN,
        "keras",
        """\
from keras import layers, models
model = models.Sequential([
    layers.Input(shape=(64,)),
    layers.Dense(128, activation="relu"),
    layers.Dense(10, activation="softmax"),
])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(X, y, epochs=20, validation_split=0.2)
""",
        history=history([1.2, 0.6, 0.4], accuracy=0.9, val_accuracy=0.88),
    ),
    Case(
        "mlp",
        Kind.ANN,
        "sklearn",
        """\
from sklearn.neural_network import MLPClassifier
clf = MLPClassifier(random_state=0)
clf.fit(X, y)
""",
    ),
    Case(
        "kmeans",
        Kind.KMEANS,
        "sklearn",
        """\
from sklearn.cluster import KMeans
segments = KMeans(n_clusters=2, n_init=10, random_state=0)
segments.fit(X)
""",
        kmeans={
            "estimator": "KMeans",
            "n_clusters": 2,
            "curve": {
                "k": [2, 3, 4, 5, 6, 7],
                "inertia": [900.0, 420.0, 160.0, 140.0, 125.0, 115.0],
                "silhouette": [0.41, 0.52, 0.66, 0.58, 0.49, 0.44],
            },
        },
    ),
    Case(
        "forest",
        Kind.OTHER,
        "sklearn",
        """\
from sklearn.ensemble import RandomForestClassifier
clf = RandomForestClassifier(random_state=0)
clf.fit(X, y)
""",
    ),
    Case(
        "forest-asked",
        Kind.OTHER,
        "sklearn",
        """\
from sklearn.ensemble import RandomForestClassifier
depth = int(input("max depth of the trees? "))
clf = RandomForestClassifier(max_depth=depth, random_state=0)
clf.fit(X, y)
""",
        asked=(("max depth of the trees? ", "3"),),
    ),
]


def trial_0(case: Case, metric: float = TRIAL_0_METRIC) -> Past:
    """Trial 0 as the tuning loop reads it: the code as pushed, its history from its metrics.json."""
    rows = case.history
    curve, gap, losses = curve_of(rows), generalization_gap(rows), training_losses(rows)
    return Past(0, [], TrialStatus.SUCCEEDED, metric, {}, curve, gap, losses)


def state_of(case: Case, number: int, past: list[Past]) -> SearchState:
    return SearchState(
        kind=case.kind,
        framework=case.framework,
        facts=model_facts(case.source),
        target=0.8,
        seed=0,
        number=number,
        past=list(past),
        kmeans=case.kmeans,
        prompts=case.prompts(),
        inputs=case.inputs,
    )
