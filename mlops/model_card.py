"""The model card (``runs/<run>/model/model.json``): built from the best trial's checked MODEL event, and
checked again when it is read, so a card that an older mlops wrote from a trial's unchecked event (a string
for ``size_bytes``, a list for ``versions``) says it cannot be used instead of failing the report."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from mlops.domain import RuntimeName
from mlops.ledger import RunRecord, TrialRecord
from mlops.records import BadRecord, key, parse
from mlops.trial_records import ModelFields
from mlops_harness.protocol import STATE_DICT_FILE, ModelFormat

CARD_SCHEMA = 1
FILE_NAMES = frozenset(f.file_name for f in ModelFormat)


@dataclass(frozen=True)
class CardMetric:
    name: str | None = None
    value: float | None = None
    source: str | None = None
    target: float | None = None
    reached: bool | None = None


@dataclass(frozen=True)
class CardTrial:
    number: int
    changes: list[str] = field(default_factory=list)
    seed: int | None = None


@dataclass(frozen=True)
class CardCheck:
    loaded: bool | None = None
    predicted: bool | None = None
    error: str | None = None
    note: str | None = None
    runtime: str | None = None
    image: str | None = None
    file: str | None = None
    class_name: str | None = key("class")
    output_shape: Any = None
    batch_rows: int | None = None
    load_s: float | None = None
    seconds: float | None = None
    at: float | None = None
    versions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CardWeights:
    """A PyTorch model's state_dict beside it (``model.pt``)."""

    file: str
    size_bytes: int | None = None
    sha256: str | None = None
    load: str | None = None

    def __post_init__(self) -> None:
        if self.file != STATE_DICT_FILE:
            raise ValueError(f"state_dict.file must be {STATE_DICT_FILE}, not {self.file[:60]!r}")


@dataclass(frozen=True)
class Card:
    """What a card may hold, each field of its type (every one may be missing from an older card)."""

    schema: int | None = None
    file: str | None = None
    format: ModelFormat | None = None
    load: str | None = None
    framework: str | None = None
    class_name: str | None = key("class")
    metric: CardMetric | None = None
    input: dict[str, Any] | None = None
    versions: dict[str, str] = field(default_factory=dict)
    environment: dict[str, str | None] = field(default_factory=dict)
    run: str | None = None
    source: str | None = None
    ref: str | None = None
    commit: str | None = None
    script: str | None = None
    trial: CardTrial | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    reload_error: str | None = None
    saved_at: float | None = None
    check: CardCheck | None = None
    error: str | None = None
    state_dict: CardWeights | None = None

    def __post_init__(self) -> None:
        if self.file is not None and self.file not in FILE_NAMES:
            raise ValueError(f"file must be one of {', '.join(sorted(FILE_NAMES))}, not {self.file[:60]!r}")


def checked(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` when it is a card of the right types; else a card that says it cannot be used, and why."""
    try:
        parse(Card, data)
    except BadRecord as e:
        return {
            "schema": CARD_SCHEMA,
            "file": None,
            "check": None,
            "error": f"model.json is not a model card mlops can use ({e}), so the model is not given back",
        }
    return data


def build(run: RunRecord, best: TrialRecord, saved: ModelFields | None) -> dict[str, Any]:
    """The card of the best trial's model, from what its MODEL event said (checked: see ModelFields)."""
    have = saved if saved is not None and saved.saved else None
    return {
        "schema": CARD_SCHEMA,
        "file": None,
        "format": have.format.value if have and have.format else None,
        "load": None,
        "framework": (have.framework if have else None) or run.framework,
        "class": saved.class_name if saved else None,
        "metric": {
            "name": best.metric_name or run.metric,
            "value": best.metric,
            "source": best.metric_source,
            "target": run.target,
            "reached": best.metric is not None and best.metric >= run.target,
        },
        "input": have.input if have else None,
        "versions": have.versions if have else {},
        "environment": {
            "runtime": run.runtime,
            "image": run.image if run.runtime is RuntimeName.DOCKER else None,
        },
        "run": run.id,
        "source": run.source,
        "ref": run.ref,
        "commit": run.commit,
        "script": run.script,
        "trial": {"number": best.number, "changes": best.changes, "seed": best.seed},
        "size_bytes": have.size_bytes if have else None,
        "sha256": have.sha256 if have else None,
        "reload_error": have.reload_error if have else None,  # it did not load back right after saving
        "saved_at": round(time.time(), 3),
        "check": None,
        "state_dict": None,  # a PyTorch model's, once it is copied beside it (mlops.model_store)
    }
