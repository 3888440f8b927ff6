"""The ledger: runs, trials and events in SQLite, and the run directories beside it.

Every state change is one transaction that also writes its event, so a process killed at any moment
(``kill -9`` included) leaves a ledger that says exactly what had happened up to the last commit. WAL mode
lets the monitor and ``mlops history`` read while a run writes.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from mlops.domain import RunStatus, TrialStatus
from mlops.errors import LedgerError, LedgerUnavailable
from mlops.ledger_db import TIMEOUT_S, connect

SCHEMA = """
CREATE TABLE IF NOT EXISTS pulls (
    source TEXT NOT NULL, commit_sha TEXT NOT NULL, ref TEXT, author TEXT, message TEXT,
    path TEXT NOT NULL, pulled_at REAL NOT NULL, PRIMARY KEY (source, commit_sha)
);
CREATE TABLE IF NOT EXISTS runs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    source TEXT NOT NULL, ref TEXT, commit_sha TEXT NOT NULL, author TEXT,
    code_dir TEXT NOT NULL, script TEXT NOT NULL,
    kind TEXT, family TEXT, framework TEXT, image TEXT, runtime TEXT,
    metric TEXT, target REAL NOT NULL, strategy TEXT NOT NULL, max_trials INTEGER NOT NULL,
    settings TEXT NOT NULL,
    status TEXT NOT NULL, reason TEXT,
    best_trial INTEGER, best_metric REAL, baseline_metric REAL,
    created_at REAL NOT NULL, finished_at REAL, dir TEXT NOT NULL,
    owner TEXT
);
CREATE TABLE IF NOT EXISTS trials (
    run_id TEXT NOT NULL REFERENCES runs(id), number INTEGER NOT NULL,
    status TEXT NOT NULL, tweaks TEXT NOT NULL, changes TEXT NOT NULL, seed INTEGER,
    metric_name TEXT, metric REAL, metric_source TEXT,
    end_reason TEXT, exit_code INTEGER, error TEXT, error_file TEXT, error_line INTEGER,
    handle TEXT, restarts INTEGER NOT NULL DEFAULT 0, epochs INTEGER,
    started_at REAL, finished_at REAL, duration_s REAL, failure_class TEXT, hint TEXT,
    PRIMARY KEY (run_id, number)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, trial INTEGER,
    at REAL NOT NULL, kind TEXT NOT NULL, message TEXT NOT NULL, data TEXT
);
CREATE INDEX IF NOT EXISTS events_run ON events(run_id, id);
"""


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
    kind: str | None
    family: str | None
    framework: str | None
    image: str | None
    runtime: str | None
    metric: str | None
    target: float
    strategy: str
    max_trials: int
    settings: dict[str, Any]
    status: RunStatus
    reason: str | None
    best_trial: int | None
    best_metric: float | None
    baseline_metric: float | None
    created_at: float
    finished_at: float | None
    dir: Path


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
    end_reason: str | None = None
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
    failure_class: str | None = None  # mlops_harness.protocol.FailureClass of a failed trial
    hint: str | None = None  # what to do about the failure (or a warning of a trial that succeeded)


class Ledger:
    """One SQLite file per workspace. Safe to open from several processes at once."""

    def __init__(self, path: Path, read_only: bool = False, timeout_s: float = TIMEOUT_S) -> None:
        self.path = path
        self.read_only = read_only
        self.conn = connect(path, SCHEMA, read_only, timeout_s)  # LedgerUnavailable: corrupt, locked, ...
        self.lock = threading.RLock()  # one connection shared by the threads of parallel trials
        if not read_only:
            self._migrate()

    def _migrate(self) -> None:
        """Columns added since a workspace's ledger was made (``ALTER TABLE ... ADD COLUMN``, kept data)."""
        have = {row["name"] for row in self.conn.execute("PRAGMA table_info(trials)")}
        for column in ("failure_class", "hint"):
            if column not in have:
                self.conn.execute(f"ALTER TABLE trials ADD COLUMN {column} TEXT")

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
        kind: str,
        message: str,
        data: dict[str, Any] | None = None,
    ) -> None:
        conn.execute(
            "INSERT INTO events (run_id, trial, at, kind, message, data) VALUES (?, ?, ?, ?, ?, ?)",
            (run_id, trial, time.time(), kind, message, json.dumps(data) if data else None),
        )

    def event(
        self,
        run_id: str | None,
        trial: int | None,
        kind: str,
        message: str,
        data: dict[str, Any] | None = None,
    ) -> None:
        with self.transaction() as conn:
            self._event(conn, run_id, trial, kind, message, data)

    # -- pulls -------------------------------------------------------------------------------------

    def find_pull(self, source: str, commit: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT * FROM pulls WHERE source = ? AND commit_sha = ?", (source, commit)
        ).fetchone()
        return dict(row) if row else None

    def record_pull(
        self, source: str, ref: str | None, commit: str, author: str, message: str, path: Path
    ) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO pulls VALUES (?, ?, ?, ?, ?, ?, ?)",
                (source, commit, ref, author, message, str(path), time.time()),
            )
            self._event(
                conn,
                None,
                None,
                "pull",
                f"pulled {source} at {commit[:12]} by {author}",
                {"source": source, "ref": ref, "commit": commit},
            )

    # -- runs --------------------------------------------------------------------------------------

    def create_run(
        self,
        *,
        name: str,
        source: str,
        ref: str | None,
        commit: str,
        author: str | None,
        code_dir: Path,
        script: str,
        classification: dict[str, Any],
        runtime: str,
        metric: str | None,
        target: float,
        strategy: str,
        max_trials: int,
        settings: dict[str, Any],
        runs_dir: Path,
    ) -> RunRecord:
        with self.transaction() as conn:
            seq = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM runs").fetchone()[0]
            run_id = f"{seq}-{name}"
            run_dir = runs_dir / run_id
            conn.execute(
                """INSERT INTO runs (seq, id, source, ref, commit_sha, author, code_dir, script, kind, family,
                   framework, image, runtime, metric, target, strategy, max_trials, settings, status,
                   created_at, dir) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
                (
                    seq,
                    run_id,
                    source,
                    ref,
                    commit,
                    author,
                    str(code_dir),
                    script,
                    classification.get("kind"),
                    classification.get("family"),
                    classification.get("framework"),
                    classification.get("image"),
                    runtime,
                    metric,
                    target,
                    strategy,
                    max_trials,
                    json.dumps(settings, sort_keys=True),
                    RunStatus.RUNNING.value,
                    time.time(),
                    str(run_dir),
                ),
            )
            self._event(
                conn,
                run_id,
                None,
                "run-created",
                f"run {run_id}: {script} at {commit[:12]} ({classification.get('kind')})",
                {"classification": classification},
            )
        run_dir.mkdir(parents=True, exist_ok=True)
        return self.run(run_id)

    def find_runs(self, source: str, commit: str, script: str) -> list[RunRecord]:
        rows = self.conn.execute(
            "SELECT * FROM runs WHERE source = ? AND commit_sha = ? AND script = ? ORDER BY seq",
            (source, commit, script),
        ).fetchall()
        return [self._run(r) for r in rows]

    def run(self, run_id: str) -> RunRecord:
        row = self.conn.execute(
            "SELECT * FROM runs WHERE id = ? OR CAST(seq AS TEXT) = ?", (run_id, run_id)
        ).fetchone()
        if row is None:
            raise LedgerError(f"no run {run_id!r} in {self.path} (mlops history lists the runs)")
        return self._run(row)

    def runs(self) -> list[RunRecord]:
        return [self._run(r) for r in self.conn.execute("SELECT * FROM runs ORDER BY seq").fetchall()]

    @staticmethod
    def _run(row: sqlite3.Row) -> RunRecord:
        data = dict(row)  # the columns are the record's fields, but for these
        del data["owner"]
        data.update(
            commit=data.pop("commit_sha"),
            code_dir=Path(row["code_dir"]),
            settings=json.loads(row["settings"]),
            status=RunStatus(row["status"]),
            dir=Path(row["dir"]),
        )
        return RunRecord(**data)

    def update_run(self, run_id: str, message: str, **fields: Any) -> None:
        allowed = {"runtime", "metric", "image", "best_trial", "best_metric", "baseline_metric", "reason"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"cannot update run fields {sorted(unknown)}")
        with self.transaction() as conn:
            if fields:
                sets = ", ".join(f"{k} = ?" for k in fields)
                conn.execute(f"UPDATE runs SET {sets} WHERE id = ?", (*fields.values(), run_id))  # noqa: S608
            self._event(conn, run_id, None, "run-updated", message, fields)

    def finish_run(self, run_id: str, status: RunStatus, reason: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE runs SET status = ?, reason = ?, finished_at = ? WHERE id = ?",
                (status.value, reason, time.time(), run_id),
            )
            self._event(conn, run_id, None, f"run-{status.value}", reason)

    # -- ownership: one orchestrator at a time works on a run ------------------------------------

    @staticmethod
    def _me() -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "create_time": psutil.Process().create_time(),
            "host": socket.gethostname(),
        }

    @staticmethod
    def owner_alive(owner: dict[str, Any] | None) -> bool:
        if not owner or owner.get("host") != socket.gethostname():
            return False
        try:
            return abs(psutil.Process(int(owner["pid"])).create_time() - float(owner["create_time"])) < 1.0
        except psutil.Error:
            return False

    def owner(self, run_id: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT owner FROM runs WHERE id = ?", (run_id,)).fetchone()
        owner: dict[str, Any] | None = json.loads(row["owner"]) if row and row["owner"] else None
        return owner

    def claim_run(self, run_id: str) -> dict[str, Any] | None:
        """Make this process the run's orchestrator; returns the live other owner instead if there is one."""
        me = self._me()
        with self.transaction() as conn:
            row = conn.execute("SELECT owner FROM runs WHERE id = ?", (run_id,)).fetchone()
            owner: dict[str, Any] | None = json.loads(row["owner"]) if row and row["owner"] else None
            if owner and owner["pid"] != me["pid"] and self.owner_alive(owner):
                return owner
            conn.execute("UPDATE runs SET owner = ? WHERE id = ?", (json.dumps(me), run_id))
            if owner and owner["pid"] != me["pid"]:
                self._event(
                    conn,
                    run_id,
                    None,
                    "run-resumed",
                    f"run {run_id} taken over from process {owner['pid']}, which is gone",
                )
        return None

    def release_run(self, run_id: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE runs SET owner = NULL WHERE id = ? AND json_extract(owner, '$.pid') = ?",
                (run_id, os.getpid()),
            )

    # -- trials ------------------------------------------------------------------------------------

    def add_trial(
        self,
        run_id: str,
        number: int,
        tweaks: list[list[Any]],
        changes: list[str],
        seed: int | None,
        status: TrialStatus = TrialStatus.PENDING,
        error: str | None = None,
    ) -> TrialRecord:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO trials (run_id, number, status, tweaks, changes, seed, error) VALUES (?,?,?,?,?,?,?)",
                (run_id, number, status.value, json.dumps(tweaks), json.dumps(changes), seed, error),
            )
            what = "; ".join(changes) or "as pushed"
            self._event(
                conn,
                run_id,
                number,
                "trial-proposed",
                f"trial {number}: {what}",
                {"tweaks": tweaks, "status": status.value, "error": error},
            )
        return self.trial(run_id, number)

    def start_trial(
        self, run_id: str, number: int, handle: dict[str, Any], restart: bool = False, reason: str = ""
    ) -> None:
        with self.transaction() as conn:
            conn.execute(
                f"""UPDATE trials SET status = ?, handle = ?, started_at = COALESCE(started_at, ?)
                    {", restarts = restarts + 1" if restart else ""} WHERE run_id = ? AND number = ?""",  # noqa: S608
                (TrialStatus.RUNNING.value, json.dumps(handle), time.time(), run_id, number),
            )
            kind = "trial-restarted" if restart else "trial-started"
            message = f"trial {number} restarted: {reason}" if restart else f"trial {number} started"
            self._event(conn, run_id, number, kind, message, handle)

    def finish_trial(
        self,
        run_id: str,
        number: int,
        status: TrialStatus,
        *,
        metric_name: str | None = None,
        metric: float | None = None,
        metric_source: str | None = None,
        end_reason: str | None = None,
        exit_code: int | None = None,
        error: str | None = None,
        error_file: str | None = None,
        error_line: int | None = None,
        epochs: int | None = None,
        duration_s: float | None = None,
        failure_class: str | None = None,
        hint: str | None = None,
    ) -> None:
        with self.transaction() as conn:
            conn.execute(
                """UPDATE trials SET status = ?, metric_name = ?, metric = ?, metric_source = ?, end_reason = ?,
                   exit_code = ?, error = ?, error_file = ?, error_line = ?, epochs = ?, duration_s = ?,
                   finished_at = ?, handle = NULL, failure_class = ?, hint = ?
                   WHERE run_id = ? AND number = ?""",
                (
                    status.value,
                    metric_name,
                    metric,
                    metric_source,
                    end_reason,
                    exit_code,
                    error,
                    error_file,
                    error_line,
                    epochs,
                    duration_s,
                    time.time(),
                    failure_class,
                    hint,
                    run_id,
                    number,
                ),
            )
            if metric is not None:
                message = f"trial {number} {status.value}: {metric_name} {metric:.4f}"
            else:
                message = f"trial {number} {status.value}: {error or end_reason}"
            self._event(
                conn,
                run_id,
                number,
                f"trial-{status.value}",
                message,
                {"end_reason": end_reason, "exit_code": exit_code, "failure_class": failure_class},
            )

    def trial(self, run_id: str, number: int) -> TrialRecord:
        row = self.conn.execute(
            "SELECT * FROM trials WHERE run_id = ? AND number = ?", (run_id, number)
        ).fetchone()
        if row is None:
            raise LedgerError(f"run {run_id} has no trial {number}")
        return self._trial(row)

    def trials(self, run_id: str) -> list[TrialRecord]:
        rows = self.conn.execute(
            "SELECT * FROM trials WHERE run_id = ? ORDER BY number", (run_id,)
        ).fetchall()
        return [self._trial(r) for r in rows]

    @staticmethod
    def _trial(row: sqlite3.Row) -> TrialRecord:
        data = dict(row)  # the columns are the record's fields
        data.update(
            status=TrialStatus(row["status"]),
            tweaks=json.loads(row["tweaks"]),
            changes=json.loads(row["changes"]),
            handle=json.loads(row["handle"]) if row["handle"] else None,
        )
        return TrialRecord(**data)

    def events(self, run_id: str | None = None) -> list[dict[str, Any]]:
        if run_id is None:
            rows = self.conn.execute("SELECT * FROM events ORDER BY id").fetchall()
        else:
            rows = self.conn.execute(
                "SELECT * FROM events WHERE run_id = ? ORDER BY id", (run_id,)
            ).fetchall()
        return [dict(r) | {"data": json.loads(r["data"]) if r["data"] else None} for r in rows]
