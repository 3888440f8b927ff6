"""A ledger made by an older mlops opens, keeps every row, and answers from columns what it kept in events."""

from __future__ import annotations

import contextlib
import json
import sqlite3

import pytest

from mlops.classify.rules import Api, Framework
from mlops.domain import EndReason, Kind, RunStatus, RuntimeName, StrategyName, TrialStatus
from mlops.errors import LedgerError
from mlops.ledger import Ledger, LedgerEventKind, TrialEnd
from mlops_harness.protocol import FailureClass

# The schema of the ledgers mlops wrote before the facts of a run had columns (and trials had no
# failure_class, hint, error_type or stopped_by): as the first ledgers were made.
OLD_SCHEMA = """
CREATE TABLE pulls (source TEXT NOT NULL, commit_sha TEXT NOT NULL, ref TEXT, author TEXT, message TEXT,
    path TEXT NOT NULL, pulled_at REAL NOT NULL, PRIMARY KEY (source, commit_sha));
CREATE TABLE runs (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, source TEXT NOT NULL,
    ref TEXT, commit_sha TEXT NOT NULL, author TEXT, code_dir TEXT NOT NULL, script TEXT NOT NULL,
    kind TEXT, family TEXT, framework TEXT, image TEXT, runtime TEXT, metric TEXT, target REAL NOT NULL,
    strategy TEXT NOT NULL, max_trials INTEGER NOT NULL, settings TEXT NOT NULL, status TEXT NOT NULL,
    reason TEXT, best_trial INTEGER, best_metric REAL, baseline_metric REAL, created_at REAL NOT NULL,
    finished_at REAL, dir TEXT NOT NULL, owner TEXT);
CREATE TABLE trials (run_id TEXT NOT NULL REFERENCES runs(id), number INTEGER NOT NULL,
    status TEXT NOT NULL, tweaks TEXT NOT NULL, changes TEXT NOT NULL, seed INTEGER,
    metric_name TEXT, metric REAL, metric_source TEXT, end_reason TEXT, exit_code INTEGER, error TEXT,
    error_file TEXT, error_line INTEGER, handle TEXT, restarts INTEGER NOT NULL DEFAULT 0, epochs INTEGER,
    started_at REAL, finished_at REAL, duration_s REAL, PRIMARY KEY (run_id, number));
CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, trial INTEGER,
    at REAL NOT NULL, kind TEXT NOT NULL, message TEXT NOT NULL, data TEXT);
"""

CLASSIFICATION = {"kind": "cnn", "family": "convolutional", "framework": "keras", "api": "keras2"}
ENVIRONMENT = {"runtime": "local", "generation": "legacy", "key": "abc123", "python": "/venv/bin/python"}


def old_ledger(path, tmp_path):
    """A ledger as an older mlops left it: run 1 finished, notified, mirrored and committed; its trial 1
    stopped by SIGTERM; run 2 new."""
    events = [
        ("1-cnn", None, "run-created", {"classification": CLASSIFICATION}),
        ("1-cnn", None, "environment", {**ENVIRONMENT, "key": "old"}),
        ("1-cnn", None, "environment", ENVIRONMENT),
        ("1-cnn", 0, "trial-started", {"pid": 1}),
        ("1-cnn", 1, "trial-started", {"pid": 2}),
        ("1-cnn", 1, "trial-stopped", {"signal": "SIGTERM", "epochs": 2}),
        ("1-cnn", None, "notify-email", {"event": "reached", "ok": True}),
        ("1-cnn", None, "mlflow-logged", {"id": "f00d"}),
        ("1-cnn", None, "best-committed", {"branch": "mlops/best-1-cnn", "commit": "c" * 40}),
        ("2-ann", None, "run-created", {"classification": {"kind": "ann"}}),
    ]
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.executescript(OLD_SCHEMA)
        for seq, run_id, kind in ((1, "1-cnn", "cnn"), (2, "2-ann", "ann")):
            conn.execute(
                "INSERT INTO runs (seq, id, source, commit_sha, code_dir, script, kind, framework, runtime, "
                "target, strategy, max_trials, settings, status, created_at, dir) "
                "VALUES (?, ?, '/src', ?, '/src', 'train.py', ?, 'keras', 'docker', 0.9, 'tpe', 5, '{}', ?, 1.0, ?)",
                (seq, run_id, "a" * 40, kind, "reached" if seq == 1 else "running", str(tmp_path / run_id)),
            )
        conn.execute(
            "INSERT INTO trials (run_id, number, status, tweaks, changes, end_reason, error, error_line) "
            "VALUES ('1-cnn', 0, 'failed', '[]', '[]', 'exited', 'SyntaxError: invalid syntax', 3)"
        )
        conn.execute(
            "INSERT INTO trials (run_id, number, status, tweaks, changes) VALUES ('1-cnn', 1, 'running', '[]', '[]')"
        )
        for run_id, trial, kind, data in events:
            conn.execute(
                "INSERT INTO events (run_id, trial, at, kind, message, data) VALUES (?, ?, 1.0, ?, 'said', ?)",
                (run_id, trial, kind, json.dumps(data)),
            )
        conn.commit()


def test_an_old_ledger_opens_with_its_facts_in_columns(tmp_path):
    db = tmp_path / "ledger.db"
    old_ledger(db, tmp_path)
    ledger = Ledger(db)
    first, second = ledger.runs()
    assert first.kind is Kind.CNN and first.framework is Framework.KERAS and first.api is Api.KERAS2
    assert first.runtime is RuntimeName.DOCKER and first.strategy is StrategyName.TPE
    assert first.status is RunStatus.REACHED
    assert first.env_key == "abc123" and ledger.environment(first.id) == ENVIRONMENT  # the last one
    assert first.mlflow_id == "f00d" and first.best_commit == "c" * 40
    assert ledger.notified(first.id) == {"reached"} and ledger.notified(second.id) == set()
    assert second.api is None and second.mlflow_id is None and second.best_commit is None
    broken, stopped = ledger.trials(first.id)
    assert broken.status is TrialStatus.FAILED and broken.end_reason is EndReason.EXITED
    assert broken.error_type == "SyntaxError" and broken.failure_class is None
    assert ledger.stopped_by(first.id, 1) == "SIGTERM" and ledger.stopped_by(first.id, 0) is None
    assert len(ledger.events()) == 10  # every event kept

    # and the upgraded ledger goes on: new facts land in the columns, once
    ledger.record_notification(second.id, "failed", "webhook", False, "failed: NOT sent")
    ledger.finish_trial(
        first.id, 1, TrialEnd(TrialStatus.FAILED, end_reason=EndReason.OOM, failure_class=FailureClass.OOM)
    )
    assert ledger.notified(second.id) == {"failed"}
    again = Ledger(db)  # a second open migrates nothing more
    assert again.trial(first.id, 1).failure_class is FailureClass.OOM
    assert [e.kind for e in again.events(second.id)][-1] == LedgerEventKind.NOTIFY_WEBHOOK


def test_an_old_ledger_read_only_reads_without_the_new_columns(tmp_path):
    db = tmp_path / "ledger.db"
    old_ledger(db, tmp_path)
    ledger = Ledger(db, read_only=True)
    first, _ = ledger.runs()
    assert first.kind is Kind.CNN and first.api is None and first.env_key is None
    assert ledger.trials(first.id)[0].error_type is None
    assert "api" not in {r[1] for r in sqlite3.connect(db).execute("PRAGMA table_info(runs)")}


def test_an_unknown_value_in_a_column_is_said_with_the_column(tmp_path):
    db = tmp_path / "ledger.db"
    old_ledger(db, tmp_path)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("UPDATE runs SET runtime = 'kubernetes' WHERE seq = 2")
        conn.commit()
    with pytest.raises(LedgerError, match="runtime 'kubernetes'"):
        Ledger(db).runs()
