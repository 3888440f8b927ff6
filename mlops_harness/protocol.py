"""What crosses from the harness to the orchestrator: exit codes, file names, settings, events.

Both sides import this module, and the orchestrator imports nothing else of the harness: the numbers and
names below are declared once, never copied, and nothing is parsed back from the harness's human lines.
Standard library only (it runs inside the training images, which do not install mlops).

The structured event stream, ``events.jsonl`` in the trial folder, is one JSON object per line, appended
and flushed line by line, kept across restarts of the trial::

    {"event": "epoch", "at": 1718000000.5, "fit": 0, "epoch": 3, "epochs": 10, "logs": {"accuracy": 0.91}}

Every event has ``event`` (an :class:`EventKind` value) and ``at`` (seconds since the epoch); the other
fields depend on the kind (see :class:`EventKind`). A line cut short by a kill is skipped by the readers.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any


class ExitCode(enum.IntEnum):
    """How the harness process ends."""

    OK = 0  # a metric was collected
    SCRIPT_ERROR = 1  # the script raised (or called sys.exit with an error)
    NO_METRIC = 3  # the script ran to its end but produced no metric
    BAD_INVOCATION = 4  # the harness was called wrongly
    MODEL_NOT_LOADED = 5  # --check-model: the saved model did not load, or did not predict


class FailureClass(enum.StrEnum):
    """Why a trial failed. The harness classes what the script raised; the orchestrator, how a launch ended."""

    ENVIRONMENT = "environment"  # a module the environment does not have
    API = "api"  # code for another generation of its library (Keras 2, an older scikit-learn)
    DATA = "data"  # a file or folder the script reads is not there
    DOWNLOAD = "download"  # a data set or weights could not be fetched
    INPUT = "input"  # the script asked for input()
    CODE = "code"  # any other exception of the script
    CRASH = "crash"  # killed by a signal, or the engine or machine went away
    OOM = "oom"  # over its memory limit
    TIMEOUT = "timeout"  # over its time limit
    DISK = "disk"  # over its disk quota (bytes or files)


@dataclass(frozen=True)
class ScriptFailure:
    """What ``outcome.json`` says of a script that raised. The orchestrator decides on ``error_type`` and
    ``failure_class``; ``error`` and ``hint`` are words for people, never parsed."""

    error: str  # "NameError: name 'x' is not defined" (its first line)
    error_type: str  # the exception's class name, ``type(e).__name__``: "NameError", "SystemExit"
    failure_class: FailureClass
    hint: str | None = None
    file: str | None = None
    line: int | None = None
    traceback: str | None = None

    def fields(self) -> dict[str, Any]:
        """The outcome's fields (failure_class as its value; what is not known left out)."""
        found = {**self.__dict__, "failure_class": self.failure_class.value}
        return {k: v for k, v in found.items() if v is not None}


# Files and folders the harness writes into the trial folder.
METRICS_FILE = "metrics.json"
ACCURACY_FILE = "accuracy.txt"
OUTCOME_FILE = "outcome.json"
EVENTS_FILE = "events.jsonl"
LOG_FILE = "log.txt"  # the process's output; written by the runtime, not by the harness
CHECKPOINT_DIR = "checkpoints"
WORK_DIR = "work"  # the script's folder, copied: the working directory of the training
OUTSIDE_DIR = "outside"  # the author's absolute folders the script writes to (/DLCode -> outside/DLCode)
INPUTS_FILE = "inputs.json"  # written by the orchestrator: {"answers": [...]}, the script's input() answers
MODEL_DIR = "model"  # the trained model: in a trial folder, and the best one in the run folder
STATE_DICT_FILE = "model.pt"  # a PyTorch model's state_dict, in MODEL_DIR beside the model
MODEL_CARD = "model.json"  # in the run's model folder: what the model is, where it came from, that it loads
CHECK_FILE = "check.json"  # written by ``--check-model``: did the model load and predict
GO_FILE = ".go"  # written by the runtime: a harness started ahead (``--wait-for``) runs the trial now
CHECK_PRELOAD_ENV = "MLOPS_CHECK_PRELOAD"  # --check-model started ahead: libraries to import while waiting


class ModelFormat(enum.StrEnum):
    """How a model is saved; each has one file name in MODEL_DIR and one way to load it."""

    KERAS = "keras"  # Keras's native format (Keras 3, and tf.keras >= 2.13)
    H5 = "h5"  # older Keras 2, which has no native format
    PICKLE = "pickle"  # scikit-learn: a pickle (written with cloudpickle), read by joblib.load or pickle.load
    TORCH_EXPORT = "torch_export"  # PyTorch: torch.export's program, read by torch.export.load
    TORCHSCRIPT = "torchscript"  # PyTorch, where torch.export fails: TorchScript, read by torch.jit.load

    @property
    def file_name(self) -> str:
        return {
            "keras": "model.keras",
            "h5": "model.h5",
            "pickle": "model.pkl",
            "torch_export": "model.pt2",
            "torchscript": "model.ts",
        }[self.value]

    def load_code(self, path: str) -> str:
        """The line of Python that loads a model saved in this format from ``path``."""
        if self is ModelFormat.PICKLE:
            return f"import joblib; model = joblib.load({path!r})"
        if self is ModelFormat.TORCH_EXPORT:
            return f"import torch; model = torch.export.load({path!r}).module()"
        if self is ModelFormat.TORCHSCRIPT:
            return f"import torch; model = torch.jit.load({path!r})"
        return f"import keras; model = keras.models.load_model({path!r})"


# Environment variables the harness reads.
ENV_SEED = "MLOPS_SEED"  # an integer: Python's, numpy's and Keras's seeds
ENV_CLUSTER_METRIC = "MLOPS_CLUSTER_METRIC"  # "ari": a clustering's metric is its adjusted Rand index
ENV_CHECKPOINT_EVERY_BATCHES = "MLOPS_CHECKPOINT_EVERY_BATCHES"  # also checkpoint every N batches
ENV_CHECKPOINTS = "MLOPS_CHECKPOINTS"  # "0": no checkpoints at all
ENV_PATIENCE = "MLOPS_PATIENCE"  # epochs without a better monitored value before a fit stops; "0": never
ENV_STOP_AT = "MLOPS_STOP_AT"  # a validation accuracy at which a fit stops (the target and a margin)
ENV_DATASETS = "MLOPS_DATASETS"  # the folder of imported data sets (read-only), as the trial sees it
ENV_AUTHOR_FOLDERS = "MLOPS_AUTHOR_FOLDERS"  # JSON list: folders of the author's machine that mlops made
# for the trial (mounted from OUTSIDE_DIR at the paths the script names, and the folders inside them)
ENV_IMPORT_WORKSPACE = "MLOPS_IMPORT_WORKSPACE"  # the --workspace a failed download's import line names

# The imported data sets of a machine (``mlops datasets import``), one folder per kind, and where each kind
# goes in a trial's cache: the variable naming the library's cache home, and the folder in it that the
# library looks in (``keras.datasets.mnist.load_data(path=NAME)`` reads ``$KERAS_HOME/datasets/NAME``).
DATASET_HOMES = {
    "keras": ("KERAS_HOME", "datasets"),
    "sklearn": ("SCIKIT_LEARN_DATA", ""),
    "torch": ("TORCH_HOME", ""),
}

# Where a metric came from (metrics.json's ``source``), for the sources of a metric the script itself never
# measured: a scikit-learn model mlops cross-validated after the script ended, and the accuracy a Keras fit
# logged on its own training data (no evaluate, no validation data). Others are the script's own call
# ("score", "accuracy_score", "evaluate", "val_accuracy", "kmeans") or a file it wrote ("file:NAME").
SOURCE_CROSS_VALIDATED = "cross_validated"
SOURCE_TRAIN_ACCURACY = "train_accuracy"
UNMEASURED_SOURCES = (SOURCE_CROSS_VALIDATED, SOURCE_TRAIN_ACCURACY)

# Accuracy keys among Keras's logs, most wanted first.
ACCURACY_KEYS = ("accuracy", "acc")
# The per-epoch accuracy a learning curve follows: validation when there is one.
CURVE_KEYS = ("val_accuracy", "val_acc", "accuracy", "acc")
# Keys of an accuracy in a JSON object a script wrote itself ({"accuracy": 0.93}), most wanted first.
WRITTEN_ACCURACY_KEYS = ("accuracy", "acc", "val_accuracy", "test_accuracy", "score")


def accuracy_key(logs: Mapping[str, Any], prefix: str = "") -> str | None:
    """The accuracy entry among Keras's logs ('accuracy', 'acc', 'sparse_categorical_accuracy', ...)."""
    keys = [k for k in logs if k.startswith(prefix) and (prefix or not k.startswith("val_"))]
    for wanted in ACCURACY_KEYS:
        if prefix + wanted in keys:
            return prefix + wanted
    for key in keys:
        if key.endswith("accuracy") or key.endswith("_acc"):
            return key
    return None


# --------------------------------------------------------------------------------------------------
# Files


def read_plain(path: Path) -> str:
    """A file's text; OSError when it is a link (a trial folder is written by someone else's code, which
    could point its files at files of the machine that reads them)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with open(fd, encoding="utf-8", errors="replace") as fh:
        return fh.read()


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from a file, or None if it is missing, half-written, a link or not an object."""
    try:
        data = json.loads(read_plain(path))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all: a temporary file beside it, renamed into place.
    The temporary file is made anew, never opened through a link left in its place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, read in blocks (a model can be large)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def to_json(data: object) -> str:
    """JSON text of what the harness writes; numpy scalars become numbers, anything else odd a string."""
    return json.dumps(data, indent=2, default=_json_default)


def _json_default(value: Any) -> object:
    try:
        return float(value)  # numpy scalars
    except (TypeError, ValueError):
        return str(value)


def as_float(value: Any) -> float | None:
    """A number from a log value (a numpy scalar, a tensor), or None if it is none or NaN."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


# --------------------------------------------------------------------------------------------------
# Events


class EventKind(enum.StrEnum):
    """What happened; the fields each kind carries besides ``event`` and ``at``."""

    STARTED = "started"  # script, pid: a launch of the harness began running the script
    EPOCH = "epoch"  # fit, epoch (from 1), epochs (or null), logs {name: number}
    RESUMED = "resumed"  # fit, epoch: a fit restored its checkpoint and goes on after that epoch
    CHECKPOINT = "checkpoint"  # fit, epoch, batch, name: a checkpoint was written whole
    INPUTS = "inputs"  # fit, samples, dtype, min, max: the array a fit trained on (a tuner's evidence:
    # pixels in 0..255 that the model never scales); numbers only, never the data itself
    STOPPED = "stopped"  # fit, epoch, why (StopReason), monitor, value, patience, best_epoch (from 1): a fit
    # stopped before its last epoch (with the weights of best_epoch, when the patience ran out)
    METRIC = "metric"  # metric, value, source: the trial's metric, measured
    MEASURED = "measured"  # name, value, source: the script measured its model (evaluate, score, ...);
    # the metric of a launch ended from outside (a timeout, its memory) before the harness chose one
    INPUT = "input"  # index, prompt, answer (null when it had none): the script asked input()
    MODEL = "model"  # saved (bool), file, format, framework, class, origin, input, versions, size_bytes,
    # sha256; or saved false and error: the model that produced the metric, saved (see MODEL_FIELDS)
    FINISHED = "finished"  # status, exit_code, duration_s: the launch ends


class StopReason(enum.StrEnum):
    """Why a fit stopped before its last epoch (a STOPPED event's ``why``)."""

    PATIENCE = "patience"  # the monitored value did not improve for the patience's epochs
    TARGET = "target"  # the validation accuracy passed the target with its margin


def describe_stop(stop: Mapping[str, Any]) -> str:
    """A STOPPED event's fields in words: 'no better val_accuracy in 3 epochs, weights of epoch 4'."""
    monitor, value = stop.get("monitor"), stop.get("value")
    if stop.get("why") == StopReason.PATIENCE:
        return (
            f"no better {monitor} in {stop.get('patience')} epochs, weights of epoch {stop.get('best_epoch')}"
        )
    if stop.get("why") == StopReason.TARGET:
        shown = f" ({value:.4f})" if isinstance(value, int | float) else ""
        return f"{monitor}{shown} past the target"
    return str(stop.get("why"))


# What a MODEL event says besides saved/error. ``input`` describes what ``fit`` was given, so a batch of
# the same form can be made: {"kind": "array", "shape": [null, 8, 8, 1], "dtype": "float32"} (null: any
# size), {"kind": "frame", "columns": [...], "dtypes": [...], "examples": {...}} for a pandas DataFrame,
# {"kind": "list"|"dict", "items": ...} for a model with several inputs, or null when it is not known.
# ``examples`` holds one value seen at fit for each text or category column (a batch of random numbers
# cannot stand in for those); numbers are never recorded.
# ``reload_error`` says why a saved Keras model did not load back in the harness (null when it did).
MODEL_FIELDS = (
    "file", "format", "framework", "class", "origin", "input", "versions", "size_bytes", "sha256", "reload_error",
    "state_dict",  # PyTorch: {"file": "model/model.pt", "size_bytes", "sha256"}, the weights beside the model
)  # fmt: skip


@dataclass(frozen=True)
class Event:
    kind: EventKind
    at: float
    fields: dict[str, Any]

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)


def encode_event(kind: EventKind, at: float | None = None, **fields: Any) -> str:
    """One event as one line of JSON (without its newline)."""
    record = {"event": kind.value, "at": round(time.time() if at is None else at, 3), **fields}
    return json.dumps(record, default=_json_default)


def decode_event(line: str) -> Event | None:
    """The event a line holds, or None for a line that is not one (cut short, empty, unknown kind)."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    try:
        kind = EventKind(record.pop("event", None))
        at = float(record.pop("at", 0.0))
    except (TypeError, ValueError):
        return None
    return Event(kind, at, record)


def decode_events(lines: Iterable[str]) -> Iterator[Event]:
    """The events among ``lines``; lines that are not events (a last line cut short by a kill) skipped."""
    for line in lines:
        event = decode_event(line)
        if event is not None:
            yield event


def read_events(path: Path) -> list[Event]:
    """Every event in an events file; [] when there is none."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return list(decode_events(text.splitlines()))


def last_model(path: Path) -> dict[str, Any] | None:
    """The fields of the last MODEL event of an events file (the launch that finished), or None."""
    models = [e for e in read_events(path) if e.kind is EventKind.MODEL]
    return dict(models[-1].fields) if models else None


class EventWriter:
    """Appends events to a file, one line each, flushed as it is written (safe from several threads)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None
        self._lock = threading.Lock()

    def write(self, kind: EventKind, **fields: Any) -> None:
        line = encode_event(kind, **fields) + "\n"
        with self._lock:
            if self._file is None:
                self._file = self._open()
            self._file.write(line)
            self._file.flush()

    def _open(self) -> IO[str]:
        try:  # a launch killed mid-line left a partial line: start on a line of our own
            with self.path.open("rb") as existing:
                existing.seek(-1, os.SEEK_END)
                cut = existing.read(1) != b"\n"
        except OSError:  # no file yet, or an empty one
            cut = False
        appended = self.path.open("a", encoding="utf-8")
        if cut:
            appended.write("\n")
        return appended

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
