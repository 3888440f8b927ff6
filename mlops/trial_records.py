"""What a trial left, as typed records: its metrics, its outcome, its events, its model, its load check.

Every file comes through :mod:`mlops.trial_files` (no link followed, regular files inside the trial's folder
only, capped) and every record is checked against its type here (:mod:`mlops.records`), so a record of
the wrong type (a string for a size, a list for a mapping) is found where it is read, as
:class:`~mlops.trial_files.BadTrialFile` naming the file, the line and the field: the trial's failure, never
a crash of a later job. The harness's side of each record is declared in :mod:`mlops_harness.protocol`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from mlops import trial_files
from mlops.layout import PARAMS, SOURCE
from mlops.records import BadRecord, key, parse
from mlops.trial_files import BadTrialFile
from mlops_harness.protocol import (
    CHECK_FILE,
    EVENTS_FILE,
    INPUTS_FILE,
    METRICS_FILE,
    MODEL_DIR,
    OUTCOME_FILE,
    STATE_DICT_FILE,
    Event,
    EventKind,
    ModelFormat,
    decode_event,
)

T = TypeVar("T")
NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")  # a metric's name, as the harness gives it
SHA256 = re.compile(r"[0-9a-f]{64}")


def _finite(value: float | None, what: str) -> None:
    if value is not None and not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, not {value}")


# -- metrics.json ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stop:
    """A fit that stopped before its last epoch (a STOPPED event's fields, kept in metrics.json)."""

    epoch: int
    fit: int = 0
    why: str | None = None
    monitor: str | None = None
    value: float | None = None
    patience: int | None = None
    best_epoch: int | None = None


@dataclass(frozen=True)
class InputsSeen:
    """What a fit trained on (an INPUTS event's fields): numbers only."""

    samples: int
    dtype: str
    min: float
    max: float
    fit: int = 0


@dataclass(frozen=True)
class Curve:
    """The WCSS and silhouette of KMeans for each k."""

    k: list[int]
    inertia: list[float]
    silhouette: list[float]

    def __post_init__(self) -> None:
        if not len(self.k) == len(self.inertia) == len(self.silhouette):
            raise ValueError("k, inertia and silhouette must be lists of the same length")


@dataclass(frozen=True)
class Kmeans:
    estimator: str | None = None
    n_clusters: int | None = None
    inertia: float | None = None
    n_samples: int | None = None
    silhouette: float | None = None
    ari: float | None = None
    curve: Curve | None = None


Row = dict[str, int | float | None]  # one epoch: {"fit": 0, "epoch": 3, "accuracy": 0.91, ...}


@dataclass(frozen=True)
class Metrics:
    """``metrics.json``: the trial's metric (when it has one), its history per epoch, and what it measured."""

    metric: str | None = None
    value: float | None = None
    source: str | None = None
    epochs: int | None = None
    duration_s: float | None = None
    history: list[Row] = field(default_factory=list)
    stopped: list[Stop] = field(default_factory=list)
    inputs: list[InputsSeen] = field(default_factory=list)
    kmeans: Kmeans | None = None

    def __post_init__(self) -> None:
        if self.metric is not None and not NAME.fullmatch(self.metric):
            raise ValueError(f"metric must be a name of letters, digits and _.:- (not {self.metric[:40]!r})")
        _finite(self.value, "value")
        if self.epochs is not None and self.epochs < 0:
            raise ValueError(f"epochs must be at least 0, not {self.epochs}")
        for n, row in enumerate(self.history):
            epoch, fit = row.get("epoch"), row.get("fit", 0)
            if not isinstance(epoch, int) or epoch < 1 or not isinstance(fit, int) or fit < 0:
                raise ValueError(f"history[{n}]: 'epoch' must be a whole number from 1 and 'fit' one from 0")

    @property
    def measured(self) -> bool:
        return self.value is not None


# -- outcome.json ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FailedAfter:
    """Where the script failed after its metric was measured."""

    error: str | None = None
    error_type: str | None = None  # the exception's class name (protocol.ScriptFailure)
    file: str | None = None
    line: int | None = None
    failure_class: str | None = None
    hint: str | None = None


@dataclass(frozen=True)
class HarnessOutcome:
    """``outcome.json``: how the script ended, as the harness saw it."""

    status: str | None = None
    error: str | None = None
    error_type: str | None = None  # the exception's class name (protocol.ScriptFailure): decide on this
    file: str | None = None
    line: int | None = None
    traceback: str | None = None
    failure_class: str | None = None
    hint: str | None = None
    exit_code: int | None = None
    duration_s: float | None = None
    failed_after_metric: FailedAfter | None = None


# -- events.jsonl ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EpochFields:
    epoch: int
    fit: int = 0
    epochs: int | None = None
    logs: dict[str, float | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.epoch < 1:
            raise ValueError(f"epoch must be at least 1, not {self.epoch}")


@dataclass(frozen=True)
class InputFields:
    index: int
    prompt: str = ""
    answer: str | None = None

    def __post_init__(self) -> None:
        if self.index < 0:
            raise ValueError(f"index must be at least 0, not {self.index}")


@dataclass(frozen=True)
class WeightsFields:
    """A PyTorch model's ``state_dict``, saved beside it as ``model/model.pt``."""

    file: str
    size_bytes: int
    sha256: str

    def __post_init__(self) -> None:
        if self.file != f"{MODEL_DIR}/{STATE_DICT_FILE}":
            raise ValueError(
                f"file must be {MODEL_DIR}/{STATE_DICT_FILE}, where the harness saves a state_dict"
            )
        if self.size_bytes < 0 or not SHA256.fullmatch(self.sha256):
            raise ValueError("size_bytes must be at least 0 and sha256 64 hexadecimal digits")


@dataclass(frozen=True)
class ModelFields:
    """A MODEL event: the model behind the metric, saved in the trial's ``model/`` folder, or why not."""

    saved: bool
    file: str | None = None
    format: ModelFormat | None = None
    framework: str | None = None
    class_name: str | None = key("class")
    origin: Any = None
    input: dict[str, Any] | None = None
    versions: dict[str, str] = field(default_factory=dict)
    size_bytes: int | None = None
    sha256: str | None = None
    reload_error: str | None = None
    error: str | None = None
    state_dict: WeightsFields | None = None  # PyTorch: the model's state_dict beside it

    def __post_init__(self) -> None:
        if not self.saved:
            return
        if self.format is None or self.size_bytes is None or self.sha256 is None:
            raise ValueError("a saved model needs its format, size_bytes and sha256")
        expected = f"{MODEL_DIR}/{self.format.file_name}"
        if self.file != expected:
            raise ValueError(f"file must be {expected}, where the harness saves a {self.format} model")
        if self.size_bytes < 0 or not SHA256.fullmatch(self.sha256):
            raise ValueError("size_bytes must be at least 0 and sha256 64 hexadecimal digits")


FIELDS: dict[EventKind, type] = {
    EventKind.EPOCH: EpochFields,
    EventKind.INPUT: InputFields,
    EventKind.MODEL: ModelFields,
}


def checked_event(line: str) -> Event | None:
    """The event a line holds, its fields checked against its kind's record; None for a line that is no
    event (cut short by a kill, an unknown kind). BadRecord for an event of the wrong type."""
    event = decode_event(line)
    if event is not None and event.kind in FIELDS:
        try:
            parse(FIELDS[event.kind], event.fields)
        except BadRecord as e:
            raise BadRecord(f"a {event.kind.value} event", f"that does not fit: {e}") from None
    return event


def live_events(lines: Iterable[str]) -> Iterator[Event]:
    """The well-formed events among ``lines`` as they come (a bad one is the trial's failure when it ends,
    see :func:`read_left`; meanwhile it is left out)."""
    for line in lines:
        try:
            event = checked_event(line)
        except BadRecord:
            continue
        if event is not None:
            yield event


def events(folder: Path) -> list[Event]:
    """Every event of a trial, each checked; BadTrialFile naming the line of one of the wrong type."""
    text = trial_files.read_text(folder, EVENTS_FILE)
    found = []
    for number, line in enumerate((text or "").splitlines(), start=1):
        try:
            event = checked_event(line)
        except BadRecord as e:
            raise BadTrialFile(f"{EVENTS_FILE} line {number}", f"holds {e.where} {e.why}") from None
        if event is not None:
            found.append(event)
    return found


def last_model(folder: Path) -> ModelFields | None:
    """What the harness said of the trial's model (its last MODEL event), or None if it said nothing."""
    models = [e for e in events(folder) if e.kind is EventKind.MODEL]
    return parse(ModelFields, models[-1].fields) if models else None


# -- the other files --------------------------------------------------------------------------------------


def _record(cls: type[T], folder: Path, name: str) -> T | None:
    value = trial_files.read_json(folder, name)
    if value is None:
        return None
    try:
        return parse(cls, value)
    except BadRecord as e:
        raise BadTrialFile(name, f"does not hold what the harness writes: {e}") from None


def metrics(folder: Path) -> Metrics | None:
    return _record(Metrics, folder, METRICS_FILE)


def harness_outcome(folder: Path) -> HarnessOutcome | None:
    return _record(HarnessOutcome, folder, OUTCOME_FILE)


def said_exit_code(folder: Path) -> int | None:
    """The exit code the harness wrote in outcome.json (None: none, or not a record the reader takes)."""
    try:
        found = harness_outcome(folder)
    except BadTrialFile:  # read_result says what is wrong with it
        return None
    return found.exit_code if found else None


@dataclass(frozen=True)
class CheckResult:
    """``check.json`` of a ``--check-model`` launch: did the model load, and predict."""

    loaded: bool | None = None
    predicted: bool | None = None
    error: str | None = None
    note: str | None = None
    file: str | None = None
    class_name: str | None = key("class")
    load_s: float | None = None
    batch_rows: int | None = None
    output_shape: Any = None
    versions: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        found = {k: v for k, v in self.__dict__.items() if v is not None and k != "class_name"}
        return {**found, **({"class": self.class_name} if self.class_name else {})}


def check_result(folder: Path) -> CheckResult | None:
    return _record(CheckResult, folder, CHECK_FILE)


@dataclass(frozen=True)
class Answers:
    answers: list[str] = field(default_factory=list)


def answers(folder: Path) -> list[str]:
    """The answers to the script's ``input()`` prompts given to the trial (``inputs.json``)."""
    found: Answers | None = _record(Answers, folder, INPUTS_FILE)
    return found.answers if found else []


def params(folder: Path) -> dict[str, Any]:
    """The strategy's coordinates of the trial (``params.json``): an object, {} when there is none."""
    value = trial_files.read_json(folder, PARAMS)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadTrialFile(PARAMS, "does not hold what mlops wrote: it must be an object")
    return value


def source(folder: Path) -> str | None:
    """The trial's source as mlops wrote it (``source.py``)."""
    return trial_files.read_text(folder, SOURCE)


# -- everything a launch left, at its end ---------------------------------------------------------------


@dataclass(frozen=True)
class Left:
    """What a finished launch left, every record checked."""

    metrics: Metrics | None
    outcome: HarnessOutcome | None
    model: ModelFields | None


def read_left(folder: Path) -> Left:
    """Everything a launch left, read and checked once it has ended: its inputs as mlops wrote them, its
    metrics, outcome and events of the right types, and the model it says it saved a regular file of that
    size in its ``model/`` folder. BadTrialFile for the first thing that is not: the trial's failure."""
    trial_files.check_inputs(folder)
    found = metrics(folder)
    outcome = harness_outcome(folder)
    try:
        model = last_model(folder)
    except BadRecord as e:  # checked as an event already; kept for a clear message
        raise BadTrialFile(EVENTS_FILE, f"holds a model event that does not fit: {e}") from None
    if model is not None and model.saved and model.file is not None:
        saved = trial_files.stat_regular(folder, model.file, cap=model.size_bytes, single=True)
        if saved is None:
            raise BadTrialFile(model.file, "is not there, though the harness said it saved it")
        if saved.st_size != model.size_bytes:
            raise BadTrialFile(model.file, "is not the size the harness said it saved")
    return Left(found, outcome, model)
