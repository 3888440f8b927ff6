"""The ledger's records, and the one place that converts them to and from SQLite's rows.

Above this module every closed set is its enum (as optuna's ``storages/_rdb/models.py`` holds
``TrialState``): a row's text becomes an enum here, on the way in, and an enum becomes text here, on the
way out. A column an older ledger does not have yet (one opened read-only is not migrated) reads as None.
"""

from __future__ import annotations

import enum
import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

from mlops.classify.rules import Api, Framework
from mlops.domain import (
    ClusterMetric,
    EndReason,
    Kind,
    RunSettings,
    RunStatus,
    RuntimeName,
    StrategyName,
    TrialStatus,
)
from mlops.errors import LedgerError
from mlops_harness.protocol import FailureClass

E = TypeVar("E", bound=enum.Enum)


@dataclass(frozen=True)
class RunClassification:
    """What job 2 decided a run's script trains, as the run keeps it."""

    kind: Kind | None = None
    family: str | None = None  # mlops.vocabulary.Family, finer than the kind: kept as words (it grows)
    framework: Framework | None = None
    api: Api | None = None
    image: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunClassification:
        """From :meth:`mlops.classify.rules.Classification.to_json` (any of its keys may be missing)."""
        return cls(
            kind=_enum(Kind, data.get("kind"), "kind"),
            family=data.get("family"),
            framework=_enum(Framework, data.get("framework"), "framework"),
            api=_enum(Api, data.get("api"), "api"),
            image=data.get("image"),
        )


@dataclass
class RunRecord:
    id: str
    seq: int
    source: str
    ref: str | None
    commit: str
    author: str | None
    code_dir: Path
    script: str
    kind: Kind | None
    family: str | None  # mlops.vocabulary.Family as words: a ledger keeps families this mlops may not know
    framework: Framework | None
    image: str | None  # a training image (mlops.domain.Image) or a derived image's tag
    runtime: RuntimeName | None
    metric: str | None
    target: float
    strategy: StrategyName
    max_trials: int
    settings: RunSettings
    status: RunStatus
    reason: str | None
    best_trial: int | None
    best_metric: float | None
    baseline_metric: float | None
    created_at: float
    finished_at: float | None
    dir: Path
    api: Api | None = None  # the library generation the code was written for (keras2: legacy Keras)
    env_key: str | None = None  # the key of the environment its trials run in ("" : the base as it is)
    mlflow_id: str | None = None  # the MLflow run it was logged to, once
    best_commit: str | None = None  # the commit of its best source on mlops/best-<run>, once

    @property
    def classification(self) -> RunClassification:
        return RunClassification(self.kind, self.family, self.framework, self.api, self.image)


@dataclass
class TrialRecord:
    run_id: str
    number: int
    status: TrialStatus
    tweaks: list[list[Any]]
    changes: list[str]
    seed: int | None
    metric_name: str | None = None
    metric: float | None = None
    metric_source: str | None = None
    end_reason: EndReason | None = None
    exit_code: int | None = None
    error: str | None = None
    error_file: str | None = None
    error_line: int | None = None
    handle: dict[str, Any] | None = None
    restarts: int = 0
    epochs: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    duration_s: float | None = None
    failure_class: FailureClass | None = None  # why a failed trial failed
    hint: str | None = None  # what to do about the failure (or a warning of a trial that succeeded)
    error_type: str | None = None  # the type name of the exception the script raised ("SyntaxError")


@dataclass(frozen=True)
class TrialEnd:
    """How a trial ended, as :meth:`~mlops.ledger.store.Ledger.finish_trial` records it."""

    status: TrialStatus
    metric_name: str | None = None
    metric: float | None = None
    metric_source: str | None = None
    end_reason: EndReason | None = None
    exit_code: int | None = None
    error: str | None = None
    error_file: str | None = None
    error_line: int | None = None
    error_type: str | None = None
    epochs: int | None = None
    duration_s: float | None = None
    failure_class: FailureClass | None = None
    hint: str | None = None

    @classmethod
    def of(cls, trial: TrialRecord) -> TrialEnd:
        """The end ``trial`` (a finished one) has recorded, to be recorded again."""
        return cls(**{f.name: getattr(trial, f.name) for f in fields(cls)})


def _enum(cls: type[E], value: Any, column: str) -> E | None:
    """A column's text as its enum; a value this mlops does not know is the ledger's error, said so."""
    if value is None or value == "":
        return None
    try:
        return cls(value)
    except ValueError:
        raise LedgerError(
            f"the ledger's {column} {value!r} is not one of {[str(m.value) for m in cls]}"
        ) from None


def value(member: enum.Enum | None) -> Any:
    """An enum as the text SQLite keeps (None stays None)."""
    return None if member is None else member.value


def stored(cls: type[E], given: E | str | None) -> Any:
    """A member of ``cls`` (or its value, checked to be one) as the text SQLite keeps; None stays None."""
    return None if given is None else cls(given).value


_RUN_FIELDS = frozenset(RunRecord.__dataclass_fields__)
_TRIAL_FIELDS = frozenset(TrialRecord.__dataclass_fields__)


def run_from_row(row: sqlite3.Row) -> RunRecord:
    data = {k: row[k] for k in row.keys() if k in _RUN_FIELDS}  # noqa: SIM118 (a Row iterates its values)
    data.update(
        commit=row["commit_sha"],
        code_dir=Path(row["code_dir"]),
        kind=_enum(Kind, row["kind"], "kind"),
        framework=_enum(Framework, row["framework"], "framework"),
        runtime=_enum(RuntimeName, row["runtime"], "runtime"),
        strategy=_enum(StrategyName, row["strategy"], "strategy"),
        api=_enum(Api, data.get("api"), "api"),
        settings=run_settings_from_json(json.loads(row["settings"])),
        status=RunStatus(row["status"]),
        dir=Path(row["dir"]),
    )
    return RunRecord(**data)


# Each kept setting's type, as JSON gives it back (mlops.domain.RunSettings).
_SETTING_KINDS: dict[str, type[Any]] = {
    "target": float,
    "strategy": StrategyName,
    "max_trials": int,
    "max_minutes": float,
    "seed": int,
    "cluster_metric": ClusterMetric,
    "warm_start": bool,
    "patience": int,
    "stop_at_target": bool,
    "regression_tolerance": float,
}


def run_settings_json(settings: RunSettings) -> str:
    """A run's settings as the ledger's settings column holds them."""
    data = {f.name: getattr(settings, f.name) for f in fields(settings)}
    plain = {k: v.value if isinstance(v, enum.Enum) else v for k, v in data.items()}
    return json.dumps(plain, sort_keys=True)


def run_settings_from_json(data: Mapping[str, Any]) -> RunSettings:
    """A run's settings from the ledger's JSON. What an older ledger did not record takes its default; the
    other settings it recorded (it once kept every one) are left."""
    given: dict[str, Any] = {}
    for f in fields(RunSettings):
        raw = data.get(f.name)
        if raw is None:
            continue
        kind = _SETTING_KINDS[f.name]
        try:
            given[f.name] = kind(raw)
        except (TypeError, ValueError):
            raise LedgerError(f"the ledger's setting {f.name} {raw!r} is not a {kind.__name__}") from None
    return RunSettings(**given)


def trial_from_row(row: sqlite3.Row) -> TrialRecord:
    data = {k: row[k] for k in row.keys() if k in _TRIAL_FIELDS}  # noqa: SIM118
    data.update(
        status=TrialStatus(row["status"]),
        tweaks=json.loads(row["tweaks"]),
        changes=json.loads(row["changes"]),
        handle=json.loads(row["handle"]) if row["handle"] else None,
        end_reason=_enum(EndReason, row["end_reason"], "end_reason"),
        failure_class=_enum(FailureClass, data.get("failure_class"), "failure_class"),
    )
    return TrialRecord(**data)


def run_row(classification: RunClassification) -> dict[str, Any]:
    """The columns of a run that hold its classification."""
    c = classification
    return {
        "kind": value(c.kind),
        "family": c.family,
        "framework": value(c.framework),
        "api": value(c.api),
        "image": c.image,
    }


__all__ = ["RunClassification", "RunRecord", "TrialRecord", "run_from_row", "trial_from_row"]
