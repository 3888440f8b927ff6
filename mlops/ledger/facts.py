"""The facts of a run that are recorded once and looked up later, each a column (or a table) with its
accessor: its environment, its MLflow run, its best source's commit, the notifications sent about it."""

from __future__ import annotations

import json
from typing import Any

from mlops.ledger.base import LedgerBase, now
from mlops.ledger.events import (
    BestCommitted,
    EnvironmentChosen,
    LedgerEventKind,
    MlflowLogged,
    Notified,
)


class RunFacts(LedgerBase):
    def set_environment(self, run_id: str, environment: dict[str, Any], message: str) -> None:
        """Make ``environment`` (:meth:`mlops.envs.Environment.to_json`) the run's from now on."""
        key = str(environment.get("key") or "")
        chosen = EnvironmentChosen(key, str(environment.get("runtime")), str(environment.get("generation")))
        with self.transaction() as conn:
            conn.execute(
                "UPDATE runs SET environment = ?, env_key = ? WHERE id = ?",
                (json.dumps(environment, sort_keys=True), key, run_id),
            )
            self._event(conn, run_id, None, LedgerEventKind.ENVIRONMENT, message, chosen)

    def environment(self, run_id: str) -> dict[str, Any] | None:
        """The run's environment as last recorded (:meth:`mlops.envs.Environment.from_json` reads it)."""
        row = self.conn.execute("SELECT environment FROM runs WHERE id = ?", (run_id,)).fetchone()
        found: Any = json.loads(row["environment"]) if row and row["environment"] else None
        return found if isinstance(found, dict) else None

    def set_mlflow_id(self, run_id: str, mlflow_id: str, message: str) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE runs SET mlflow_id = ? WHERE id = ?", (mlflow_id, run_id))
            self._event(conn, run_id, None, LedgerEventKind.MLFLOW_LOGGED, message, MlflowLogged(mlflow_id))

    def set_best_commit(self, run_id: str, branch: str, commit: str, message: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE runs SET best_branch = ?, best_commit = ? WHERE id = ?", (branch, commit, run_id)
            )
            self._event(
                conn, run_id, None, LedgerEventKind.BEST_COMMITTED, message, BestCommitted(branch, commit)
            )

    def record_notification(self, run_id: str, event: str, channel: str, ok: bool, message: str) -> None:
        """One delivery of a notification about the run (sent or not: it is not tried again)."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO notifications (run_id, event, channel, ok, at) VALUES (?, ?, ?, ?, ?)",
                (run_id, event, channel, int(ok), now()),
            )
            self._event(conn, run_id, None, LedgerEventKind.notified(channel), message, Notified(event, ok))

    def notified(self, run_id: str) -> set[str]:
        """The notification events (:class:`mlops.notify.NotifyEvent` values) delivered about the run."""
        rows = self.conn.execute("SELECT event FROM notifications WHERE run_id = ?", (run_id,)).fetchall()
        return {str(r["event"]) for r in rows}

    def gave_up(self, run_id: str) -> bool:
        """Whether the monitor gave up restarting one of the run's trials."""
        row = self.conn.execute(
            "SELECT 1 FROM events WHERE run_id = ? AND kind = ? LIMIT 1",
            (run_id, LedgerEventKind.MONITOR_GAVE_UP.value),
        ).fetchone()
        return row is not None
