"""What the orchestrator writes in the ledger's ``events`` table: each kind a member of
:class:`LedgerEventKind` (as the harness's own stream has :class:`mlops_harness.protocol.EventKind`), each
with its payload a dataclass below.

Events are the run's history, for people (``mlops show``, the report) and for an audit. What the code looks
up later is a column of a run or a trial, or a typed accessor of :class:`mlops.ledger.Ledger`; never a scan
of these events.
"""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from mlops.domain import RunStatus, TrialStatus


class LedgerEventKind(enum.StrEnum):
    PULL = "pull"
    PULL_FAILED = "pull-failed"
    RUN_CREATED = "run-created"
    RUN_UPDATED = "run-updated"
    RUN_RESUMED = "run-resumed"  # another orchestrator, which is gone, had it
    RUN_REACHED = "run-reached"
    RUN_EXHAUSTED = "run-exhausted"
    RUN_FAILED = "run-failed"
    RUN_RUNNING = "run-running"
    TRIAL_PROPOSED = "trial-proposed"
    TRIAL_STARTED = "trial-started"
    TRIAL_RESTARTED = "trial-restarted"
    TRIAL_SUCCEEDED = "trial-succeeded"
    TRIAL_FAILED = "trial-failed"
    TRIAL_PRUNED = "trial-pruned"
    TRIAL_SKIPPED = "trial-skipped"
    TRIAL_PENDING = "trial-pending"
    TRIAL_RUNNING = "trial-running"
    TRIAL_STOPPED = "trial-stopped"  # stopped on purpose (SIGTERM, SIGINT): resumed by the next run
    TRIAL_DIED = "trial-died"  # ended by a crash, restarted after a delay
    MONITOR_GAVE_UP = "monitor-gave-up"
    RETRY_WITHOUT_EARLY_STOP = "retry-without-early-stop"
    MODEL_SAVED = "model-saved"
    MODEL_MISSING = "model-missing"
    MODEL_NOT_LOADED = "model-not-loaded"
    ENVIRONMENT = "environment"
    MLFLOW_LOGGED = "mlflow-logged"
    NOTIFY_EMAIL = "notify-email"
    NOTIFY_WEBHOOK = "notify-webhook"
    BEST_COMMITTED = "best-committed"
    BEST_SOURCE_REFUSED = "best-source-refused"
    LINEAGE = "lineage"  # a run follows the run of the same script at an earlier commit (mlops/lineage.py)
    WARM_START = "warm-start"  # a run's search seeded by an earlier commit's trials (tweak/warm.py)

    @classmethod
    def run_finished(cls, status: RunStatus) -> LedgerEventKind:
        return cls(f"run-{status.value}")

    @classmethod
    def trial_finished(cls, status: TrialStatus) -> LedgerEventKind:
        return cls(f"trial-{status.value}")

    @classmethod
    def notified(cls, channel: str) -> LedgerEventKind:
        return cls(f"notify-{channel}")


# -- payloads -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pulled:
    source: str
    ref: str | None
    commit: str


@dataclass(frozen=True)
class PullFailed:
    source: str
    ref: str | None
    commit: str | None
    reason: str


@dataclass(frozen=True)
class RunCreated:
    classification: dict[str, Any]  # mlops.classify.rules.Classification.to_json()


@dataclass(frozen=True)
class RunUpdated:
    fields: dict[str, Any]


@dataclass(frozen=True)
class TrialProposed:
    tweaks: list[list[Any]]
    status: str
    error: str | None


@dataclass(frozen=True)
class TrialStarted:
    handle: dict[str, Any]


@dataclass(frozen=True)
class TrialEnded:
    end_reason: str | None
    exit_code: int | None
    failure_class: str | None
    error_type: str | None = None


@dataclass(frozen=True)
class TrialStopped:
    signal: str
    epochs: int | None


@dataclass(frozen=True)
class TrialDied:
    end_reason: str
    exit_code: int | None


@dataclass(frozen=True)
class ModelSaved:
    sha256: str


@dataclass(frozen=True)
class EnvironmentChosen:
    key: str
    runtime: str
    generation: str


@dataclass(frozen=True)
class MlflowLogged:
    id: str


@dataclass(frozen=True)
class Notified:
    event: str  # mlops.notify.NotifyEvent
    ok: bool


@dataclass(frozen=True)
class BestCommitted:
    branch: str
    commit: str


@dataclass(frozen=True)
class Followed:
    previous: str  # the run of the same script at the commit before
    script_key: str


@dataclass(frozen=True)
class WarmStart:
    warm_from: str  # the run whose trials seed this one
    commit: str


Payload = (
    Pulled
    | PullFailed
    | RunCreated
    | RunUpdated
    | TrialProposed
    | TrialStarted
    | TrialEnded
    | TrialStopped
    | TrialDied
    | ModelSaved
    | EnvironmentChosen
    | MlflowLogged
    | Notified
    | BestCommitted
    | Followed
    | WarmStart
)


def payload_json(data: Payload | None) -> str | None:
    return None if data is None else json.dumps(asdict(data))


@dataclass(frozen=True)
class LedgerEvent:
    """One row of the events table, as read back (the kind an older mlops wrote may be unknown here)."""

    id: int
    run_id: str | None
    trial: int | None
    at: float
    kind: str
    message: str
    data: dict[str, Any] | None = field(default=None)
