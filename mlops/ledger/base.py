"""The ledger's connection, its transactions, and the events every change writes."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from mlops.errors import LedgerUnavailable
from mlops.ledger.events import LedgerEvent, LedgerEventKind, Payload, payload_json
from mlops.ledger.schema import SCHEMA, migrate
from mlops.ledger_db import TIMEOUT_S, connect


def now() -> float:
    """The time a change is recorded at (the one clock of the ledger; tests set it)."""
    return time.time()


class LedgerBase:
    """One SQLite file per workspace. Safe to open from several processes at once."""

    def __init__(self, path: Path, read_only: bool = False, timeout_s: float = TIMEOUT_S) -> None:
        self.path = path
        self.read_only = read_only
        self.conn = connect(path, SCHEMA, read_only, timeout_s)  # LedgerUnavailable: corrupt, locked, ...
        self.lock = threading.RLock()  # one connection shared by the threads of parallel trials
        if not read_only:
            with self.lock:
                migrate(self.conn)

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT: one state change and its event, all or nothing."""
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                with suppress(LedgerUnavailable):
                    self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    @staticmethod
    def _event(
        conn: sqlite3.Connection,
        run_id: str | None,
        trial: int | None,
        kind: LedgerEventKind,
        message: str,
        data: Payload | None = None,
    ) -> None:
        conn.execute(
            "INSERT INTO events (run_id, trial, at, kind, message, data) VALUES (?, ?, ?, ?, ?, ?)",
            (run_id, trial, now(), kind.value, message, payload_json(data)),
        )

    def event(
        self,
        run_id: str | None,
        trial: int | None,
        kind: LedgerEventKind,
        message: str,
        data: Payload | None = None,
    ) -> None:
        with self.transaction() as conn:
            self._event(conn, run_id, trial, kind, message, data)

    def events(self, run_id: str | None = None) -> list[LedgerEvent]:
        """The events of a run (or of the whole ledger), oldest first: its history, for people."""
        if run_id is None:
            rows = self.conn.execute("SELECT * FROM events ORDER BY id").fetchall()
        else:
            rows = self.conn.execute(
                "SELECT * FROM events WHERE run_id = ? ORDER BY id", (run_id,)
            ).fetchall()
        return [
            LedgerEvent(
                r["id"],
                r["run_id"],
                r["trial"],
                r["at"],
                r["kind"],
                r["message"],
                json.loads(r["data"]) if r["data"] else None,
            )
            for r in rows
        ]
