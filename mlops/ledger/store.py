"""The ledger's queries and changes: pulls, runs (and which process owns one), trials."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops.domain import RunSettings, RunStatus, RuntimeName, StrategyName, TrialStatus
from mlops.errors import LedgerError
from mlops.ledger.base import now
from mlops.ledger.events import (
    LedgerEventKind,
    Pulled,
    RunCreated,
    RunUpdated,
    TrialEnded,
    TrialProposed,
    TrialStarted,
    TrialStopped,
)
from mlops.ledger.facts import RunFacts
from mlops.ledger.owner import alive, me
from mlops.ledger.records import (
    RunClassification,
    RunRecord,
    TrialEnd,
    TrialRecord,
    run_from_row,
    run_row,
    run_settings_from_json,
    run_settings_json,
    trial_from_row,
    value,
)

K = LedgerEventKind


@dataclass(frozen=True)
class NewRun:
    """What a run starts with: the script of a commit, how job 2 classified it, how it is to be tuned."""

    source: str
    ref: str | None
    commit: str
    author: str | None
    code_dir: Path
    script: str
    classification: Mapping[str, Any]  # mlops.classify.rules.Classification.to_json()
    runtime: RuntimeName
    metric: str | None
    target: float
    strategy: StrategyName
    max_trials: int
    settings: RunSettings

    def columns(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "ref": self.ref,
            "commit_sha": self.commit,
            "author": self.author,
            "code_dir": str(self.code_dir),
            "script": self.script,
            **run_row(RunClassification.from_json(self.classification)),
            "runtime": self.runtime.value,
            "metric": self.metric,
            "target": self.target,
            "strategy": self.strategy.value,
            "max_trials": self.max_trials,
            "settings": run_settings_json(self.settings),
            "status": RunStatus.RUNNING.value,
        }


_UPDATABLE = frozenset(
    {"runtime", "metric", "image", "best_trial", "best_metric", "baseline_metric", "reason"}
)


class Ledger(RunFacts):
    """One SQLite file per workspace. Safe to open from several processes at once."""

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
                (source, commit, ref, author, message, str(path), now()),
            )
            said = f"pulled {source} at {commit[:12]} by {author}"
            self._event(conn, None, None, K.PULL, said, Pulled(source, ref, commit))

    # -- runs --------------------------------------------------------------------------------------

    def create_run(self, *, name: str, runs_dir: Path, **fields: Any) -> RunRecord:
        """A new run (``fields``: those of :class:`NewRun`), numbered after the last, with its folder."""
        fields.update(runtime=RuntimeName(fields["runtime"]), strategy=StrategyName(fields["strategy"]))
        if not isinstance(fields["settings"], RunSettings):  # given as the ledger's JSON holds them
            fields["settings"] = run_settings_from_json(fields["settings"])
        new = NewRun(**fields)
        with self.transaction() as conn:
            seq = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM runs").fetchone()[0]
            run_id = f"{seq}-{name}"
            run_dir = runs_dir / run_id
            row = {"seq": seq, "id": run_id, **new.columns(), "created_at": now(), "dir": str(run_dir)}
            names, marks = ", ".join(row), ", ".join("?" * len(row))
            conn.execute(f"INSERT INTO runs ({names}) VALUES ({marks})", tuple(row.values()))  # noqa: S608
            kind = new.classification.get("kind")
            said = f"run {run_id}: {new.script} at {new.commit[:12]} ({kind})"
            self._event(conn, run_id, None, K.RUN_CREATED, said, RunCreated(dict(new.classification)))
        run_dir.mkdir(parents=True, exist_ok=True)
        return self.run(run_id)

    def find_runs(self, source: str, commit: str, script: str) -> list[RunRecord]:
        rows = self.conn.execute(
            "SELECT * FROM runs WHERE source = ? AND commit_sha = ? AND script = ? ORDER BY seq",
            (source, commit, script),
        ).fetchall()
        return [run_from_row(r) for r in rows]

    def run(self, run_id: str) -> RunRecord:
        row = self.conn.execute(
            "SELECT * FROM runs WHERE id = ? OR CAST(seq AS TEXT) = ?", (run_id, run_id)
        ).fetchone()
        if row is None:
            raise LedgerError(f"no run {run_id!r} in {self.path} (mlops history lists the runs)")
        return run_from_row(row)

    def runs(self) -> list[RunRecord]:
        return [run_from_row(r) for r in self.conn.execute("SELECT * FROM runs ORDER BY seq").fetchall()]

    def update_run(self, run_id: str, message: str, **fields: Any) -> None:
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"cannot update run fields {sorted(unknown)}")
        if "runtime" in fields:
            fields["runtime"] = RuntimeName(fields["runtime"]).value
        with self.transaction() as conn:
            if fields:
                sets = ", ".join(f"{k} = ?" for k in fields)
                conn.execute(f"UPDATE runs SET {sets} WHERE id = ?", (*fields.values(), run_id))  # noqa: S608
            self._event(conn, run_id, None, K.RUN_UPDATED, message, RunUpdated(fields))

    def finish_run(self, run_id: str, status: RunStatus, reason: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE runs SET status = ?, reason = ?, finished_at = ? WHERE id = ?",
                (status.value, reason, now(), run_id),
            )
            self._event(conn, run_id, None, K.run_finished(status), reason)

    # -- ownership: one orchestrator at a time works on a run ------------------------------------

    owner_alive = staticmethod(alive)

    def owner(self, run_id: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT owner FROM runs WHERE id = ?", (run_id,)).fetchone()
        owner: dict[str, Any] | None = json.loads(row["owner"]) if row and row["owner"] else None
        return owner

    def claim_run(self, run_id: str) -> dict[str, Any] | None:
        """Make this process the run's orchestrator; returns the live other owner instead if there is one."""
        mine = me()
        with self.transaction() as conn:
            row = conn.execute("SELECT owner FROM runs WHERE id = ?", (run_id,)).fetchone()
            owner: dict[str, Any] | None = json.loads(row["owner"]) if row and row["owner"] else None
            if owner and owner["pid"] != mine["pid"] and alive(owner):
                return owner
            conn.execute("UPDATE runs SET owner = ? WHERE id = ?", (json.dumps(mine), run_id))
            if owner and owner["pid"] != mine["pid"]:
                said = f"run {run_id} taken over from process {owner['pid']}, which is gone"
                self._event(conn, run_id, None, K.RUN_RESUMED, said)
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
            said = f"trial {number}: {'; '.join(changes) or 'as pushed'}"
            proposed = TrialProposed(tweaks, status.value, error)
            self._event(conn, run_id, number, K.TRIAL_PROPOSED, said, proposed)
        return self.trial(run_id, number)

    def start_trial(
        self, run_id: str, number: int, handle: dict[str, Any], restart: bool = False, reason: str = ""
    ) -> None:
        with self.transaction() as conn:
            conn.execute(
                f"""UPDATE trials SET status = ?, handle = ?, started_at = COALESCE(started_at, ?), stopped_by = NULL
                    {", restarts = restarts + 1" if restart else ""} WHERE run_id = ? AND number = ?""",  # noqa: S608
                (TrialStatus.RUNNING.value, json.dumps(handle), now(), run_id, number),
            )
            kind = K.TRIAL_RESTARTED if restart else K.TRIAL_STARTED
            said = f"trial {number} restarted: {reason}" if restart else f"trial {number} started"
            self._event(conn, run_id, number, kind, said, TrialStarted(handle))

    def stop_trial(self, run_id: str, number: int, signal: str, epochs: int | None, message: str) -> None:
        """The trial's launch was stopped on purpose by ``signal``: the next run resumes it."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE trials SET stopped_by = ? WHERE run_id = ? AND number = ?", (signal, run_id, number)
            )
            self._event(conn, run_id, number, K.TRIAL_STOPPED, message, TrialStopped(signal, epochs))

    def stopped_by(self, run_id: str, number: int) -> str | None:
        """The signal that stopped the trial's last launch on purpose, or None."""
        row = self.conn.execute(
            "SELECT * FROM trials WHERE run_id = ? AND number = ?", (run_id, number)
        ).fetchone()
        return str(row["stopped_by"]) if row and "stopped_by" in row.keys() and row["stopped_by"] else None  # noqa: SIM118

    def finish_trial(self, run_id: str, number: int, end: TrialEnd) -> None:
        columns = {
            "status": end.status.value,
            **{"metric_name": end.metric_name, "metric": end.metric, "metric_source": end.metric_source},
            **{"end_reason": value(end.end_reason), "exit_code": end.exit_code},
            **{"error": end.error, "error_file": end.error_file, "error_line": end.error_line},
            **{"error_type": end.error_type, "epochs": end.epochs, "duration_s": end.duration_s},
            **{"finished_at": now(), "handle": None},
            **{"failure_class": value(end.failure_class), "hint": end.hint},
        }
        if end.metric is not None:
            said = f"trial {number} {end.status.value}: {end.metric_name} {end.metric:.4f}"
        else:
            said = f"trial {number} {end.status.value}: {end.error or columns['end_reason']}"
        ended = TrialEnded(columns["end_reason"], end.exit_code, columns["failure_class"], end.error_type)
        with self.transaction() as conn:
            sets = ", ".join(f"{k} = ?" for k in columns)
            conn.execute(
                f"UPDATE trials SET {sets} WHERE run_id = ? AND number = ?",  # noqa: S608
                (*columns.values(), run_id, number),
            )
            self._event(conn, run_id, number, K.trial_finished(end.status), said, ended)

    def trial(self, run_id: str, number: int) -> TrialRecord:
        row = self.conn.execute(
            "SELECT * FROM trials WHERE run_id = ? AND number = ?", (run_id, number)
        ).fetchone()
        if row is None:
            raise LedgerError(f"run {run_id} has no trial {number}")
        return trial_from_row(row)

    def trials(self, run_id: str) -> list[TrialRecord]:
        rows = self.conn.execute(
            "SELECT * FROM trials WHERE run_id = ? ORDER BY number", (run_id,)
        ).fetchall()
        return [trial_from_row(r) for r in rows]
