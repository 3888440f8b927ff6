"""The closed sets of the domain: model kinds, trial states and how a trial ended; the settings a run keeps."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, ClassVar


class Kind(enum.StrEnum):
    """What the pushed code trains, as the classifier decides it from the syntax tree."""

    CNN = "cnn"
    ANN = "ann"
    KMEANS = "kmeans"
    OTHER = "other"


class RunStatus(enum.StrEnum):
    RUNNING = "running"
    REACHED = "reached"  # the target was reached
    EXHAUSTED = "exhausted"  # the budget ran out below the target
    FAILED = "failed"  # the run could not go on (no trial could produce a metric, bad source)

    def is_finished(self) -> bool:
        return self is not RunStatus.RUNNING


class TrialStatus(enum.StrEnum):
    PENDING = "pending"  # proposed and recorded, not started
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # produced a metric
    FAILED = "failed"  # raised, produced no metric, or was killed past its restart limit
    PRUNED = "pruned"  # stopped early by the strategy from its per-epoch metrics
    SKIPPED = "skipped"  # the proposed variant cannot work (caught before training)

    def is_finished(self) -> bool:
        return self not in (TrialStatus.PENDING, TrialStatus.RUNNING)


class EndReason(enum.StrEnum):
    """How one launch of a trial ended, as the runtime saw it."""

    EXITED = "exited"  # the process ended by itself; see the exit code
    SIGNAL = "signal"  # killed by a signal nobody here sent (kill -9 from outside, a crash)
    TIMEOUT = "timeout"  # ran past its time limit and was stopped
    OOM = "oom"  # went past its memory limit
    LOST = "lost"  # the process or container disappeared without a trace (engine restart, reboot)
    DISK = "disk"  # wrote past its disk quota (bytes or files) and was stopped

    def is_crash(self) -> bool:
        """True when the end says nothing about the user's code, so a restart may succeed."""
        return self in (EndReason.SIGNAL, EndReason.LOST)


class StrategyName(enum.StrEnum):
    """How the tuner proposes trials (``tweak/strategies.py`` holds one class per name)."""

    TPE = "tpe"  # an informed first guess, then Optuna's TPE over the tweak space
    LADDER = "ladder"  # the hand-made pipelines' fixed order, kept as the baseline


class RuntimeName(enum.StrEnum):
    """Where trials run."""

    AUTO = "auto"  # Docker when an engine answers, else local processes
    LOCAL = "local"
    DOCKER = "docker"
    RAY = "ray"  # a Ray cluster (ray_address)


class ClusterMetric(enum.StrEnum):
    """The metric of a clustering run."""

    SILHOUETTE = "silhouette"
    ARI = "ari"  # the adjusted Rand index, when the data came with labels


class KeepModels(enum.StrEnum):
    """Which trials keep their saved model once the run is over (the best one is always in ``model/``)."""

    BEST = "best"  # only the best: the others' models are removed when the run ends
    ALL = "all"


def trial_seed(base: int, number: int) -> int:
    """The seed of trial ``number`` of a run whose base seed is ``base``: the one formula for it."""
    return base * 1000 + number


class Image(enum.StrEnum):
    """The training images (dockerfiles/<name minus 'mlops-'>.Dockerfile builds each one)."""

    KERAS3 = "mlops-keras3"  # Keras 3 on TensorFlow CPU: CNN and ANN, tf.keras of TF >= 2.16
    KERAS2 = "mlops-keras2"  # TensorFlow 2.15 with Keras 2: legacy code (np_utils, fit_generator, ...)
    SKLEARN = "mlops-sklearn"  # scikit-learn, numpy, pandas: KMeans and classic models
    PYTORCH = "mlops-pytorch"  # PyTorch and torchvision (the index's wheels: they run on the CPU)
    KERAS3_GPU = "mlops-keras3-gpu"  # Keras 3 on TensorFlow with CUDA, for trials given GPUs
    PYTORCH_GPU = (
        "mlops-pytorch-gpu"  # mlops-pytorch with the NVIDIA runtime's variables, for trials given GPUs
    )


@dataclass(frozen=True)
class RunSettings:
    """The settings a run was started with and keeps (a resume, a report, its trials' seeds read them), typed;
    the ledger keeps them as JSON (``mlops/ledger/records.py`` converts). Made by ``Settings.for_run``."""

    target: float = 0.80
    strategy: StrategyName = StrategyName.TPE
    max_trials: int = 5
    max_minutes: float | None = None
    seed: int = 0
    cluster_metric: ClusterMetric = ClusterMetric.SILHOUETTE
    warm_start: bool = True
    patience: int = 3
    stop_at_target: bool = True
    regression_tolerance: float = 0.02  # a drop against the previous commit beyond it is a regression

    # What the run is searching for: a resume must not change them.
    IDENTITY: ClassVar[tuple[str, ...]] = ("target", "strategy", "max_trials", "cluster_metric", "seed")

    def identity(self) -> dict[str, Any]:
        """The identity settings as the ledger holds them (enums as their values)."""
        return {name: _plain(getattr(self, name)) for name in self.IDENTITY}


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value
