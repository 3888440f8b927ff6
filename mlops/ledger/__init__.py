"""The ledger: runs, trials and events in SQLite, and the run directories beside it.

Every state change is one transaction that also writes its event, so a process killed at any moment
(``kill -9`` included) leaves a ledger that says exactly what had happened up to the last commit. WAL mode
lets the monitor and ``mlops history`` read while a run writes.

- :mod:`~mlops.ledger.schema`: the tables, and the migrations of a ledger an older mlops made;
- :mod:`~mlops.ledger.records`: the typed records, converted to and from rows in that one place;
- :mod:`~mlops.ledger.events`: the kinds of event and their payloads;
- :mod:`~mlops.ledger.store`: :class:`Ledger`, its transactions, queries and typed accessors.
"""

from __future__ import annotations

from mlops.ledger.events import LedgerEvent, LedgerEventKind
from mlops.ledger.records import RunClassification, RunRecord, TrialEnd, TrialRecord
from mlops.ledger.schema import SCHEMA
from mlops.ledger.store import Ledger, NewRun

__all__ = [
    "SCHEMA",
    "Ledger",
    "LedgerEvent",
    "LedgerEventKind",
    "NewRun",
    "RunClassification",
    "RunRecord",
    "TrialEnd",
    "TrialRecord",
]
