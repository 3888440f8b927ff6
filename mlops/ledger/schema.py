"""The ledger's tables, and the migrations that bring a ledger made by an older mlops up to them.

A migration only adds: a column (``ALTER TABLE ... ADD COLUMN``, every row kept) and, for a fact that older
versions kept in an event only, the SQL that fills the new column from those events, so an old ledger says
after its upgrade what it said before (a run notified once is not notified again).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

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
    owner TEXT, api TEXT, environment TEXT, env_key TEXT, mlflow_id TEXT, best_branch TEXT, best_commit TEXT
);
CREATE TABLE IF NOT EXISTS trials (
    run_id TEXT NOT NULL REFERENCES runs(id), number INTEGER NOT NULL,
    status TEXT NOT NULL, tweaks TEXT NOT NULL, changes TEXT NOT NULL, seed INTEGER,
    metric_name TEXT, metric REAL, metric_source TEXT,
    end_reason TEXT, exit_code INTEGER, error TEXT, error_file TEXT, error_line INTEGER,
    handle TEXT, restarts INTEGER NOT NULL DEFAULT 0, epochs INTEGER,
    started_at REAL, finished_at REAL, duration_s REAL, failure_class TEXT, hint TEXT, error_type TEXT,
    stopped_by TEXT,
    PRIMARY KEY (run_id, number)
);
CREATE TABLE IF NOT EXISTS notifications (
    run_id TEXT NOT NULL REFERENCES runs(id), event TEXT NOT NULL, channel TEXT NOT NULL,
    ok INTEGER NOT NULL, at REAL NOT NULL, PRIMARY KEY (run_id, event, channel)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, trial INTEGER,
    at REAL NOT NULL, kind TEXT NOT NULL, message TEXT NOT NULL, data TEXT
);
CREATE INDEX IF NOT EXISTS events_run ON events(run_id, id);
"""


@dataclass(frozen=True)
class Column:
    """A column added since the first ledgers, and how its value is found in an older ledger's events."""

    table: str
    name: str
    type: str = "TEXT"
    backfill: str = ""  # an UPDATE run once, right after the column is added


def _from_event(column: str, kind: str, path: str) -> str:
    """Fill a run's column from the ``data`` of its last event of ``kind`` (older ledgers kept it there)."""
    return f"""UPDATE runs SET {column} = (SELECT json_extract(e.data, '{path}') FROM events e
        WHERE e.run_id = runs.id AND e.kind = '{kind}' AND json_valid(e.data) ORDER BY e.id DESC LIMIT 1)"""


# In the order they were added. The table's CREATE above already has every one of them.
COLUMNS: tuple[Column, ...] = (
    Column("trials", "failure_class"),
    Column("trials", "hint"),
    # The exception's type name; older ledgers kept only the message, which starts with it.
    Column(
        "trials",
        "error_type",
        backfill="""UPDATE trials SET error_type = substr(error, 1, instr(error, ':') - 1)
            WHERE error GLOB '[A-Za-z_]*:*' AND substr(error, 1, instr(error, ':') - 1) NOT GLOB '*[^A-Za-z0-9_.]*'""",
    ),
    # The signal that stopped the trial's last launch on purpose: its last start-or-stop event a stop.
    Column(
        "trials",
        "stopped_by",
        backfill="""UPDATE trials SET stopped_by = (SELECT CASE WHEN e.kind = 'trial-stopped'
            THEN COALESCE(json_extract(e.data, '$.signal'), 'a signal') END FROM events e
            WHERE e.run_id = trials.run_id AND e.trial = trials.number
            AND e.kind IN ('trial-started', 'trial-restarted', 'trial-stopped') ORDER BY e.id DESC LIMIT 1)""",
    ),
    Column("runs", "api", backfill=_from_event("api", "run-created", "$.classification.api")),
    Column("runs", "environment", backfill=_from_event("environment", "environment", "$")),
    Column("runs", "env_key", backfill="UPDATE runs SET env_key = json_extract(environment, '$.key')"),
    Column("runs", "mlflow_id", backfill=_from_event("mlflow_id", "mlflow-logged", "$.id")),
    Column("runs", "best_branch", backfill=_from_event("best_branch", "best-committed", "$.branch")),
    Column("runs", "best_commit", backfill=_from_event("best_commit", "best-committed", "$.commit")),
)

# The deliveries older ledgers recorded as notify-<channel> events.
NOTIFICATIONS_BACKFILL = """INSERT OR IGNORE INTO notifications (run_id, event, channel, ok, at)
    SELECT run_id, json_extract(data, '$.event'), substr(kind, 8), COALESCE(json_extract(data, '$.ok'), 0), at
    FROM events WHERE kind LIKE 'notify-%' AND run_id IS NOT NULL AND json_valid(data)
    AND json_extract(data, '$.event') IS NOT NULL ORDER BY id"""


def migrate(conn: sqlite3.Connection) -> None:
    """Add what an older ledger lacks, in one transaction (a ledger is migrated whole or not at all)."""
    have = {
        table: {row["name"] for row in conn.execute(f"PRAGMA table_info({table})")}  # noqa: S608
        for table in ("runs", "trials")
    }
    missing = [c for c in COLUMNS if c.name not in have[c.table]]
    if not missing:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for column in missing:
            conn.execute(f"ALTER TABLE {column.table} ADD COLUMN {column.name} {column.type}")
            if column.backfill:
                conn.execute(column.backfill)
        if any(c.table == "runs" for c in missing):
            conn.execute(NOTIFICATIONS_BACKFILL)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
