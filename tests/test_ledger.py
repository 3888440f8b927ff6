"""The ledger: one transaction per state change, consistent after kill -9 at any moment."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from mlops.config import Settings
from mlops.domain import ClusterMetric, RunSettings, RunStatus, StrategyName, TrialStatus
from mlops.errors import LedgerError
from mlops.ledger import Ledger, TrialEnd
from mlops.ledger.records import run_settings_json
from tests.support.repos import ROOT


def new_run(ledger, tmp_path, script="train.py"):
    return ledger.create_run(
        name="train",
        source="/src",
        ref=None,
        commit="a" * 40,
        author="Ada",
        code_dir=tmp_path,
        script=script,
        classification={"kind": "ann", "image": "mlops-keras3"},
        runtime="local",
        metric="accuracy",
        target=0.8,
        strategy="tpe",
        max_trials=5,
        settings={"target": 0.8},
        runs_dir=tmp_path / "runs",
    )


def test_wal_mode_and_a_run_with_its_trials_and_events(tmp_path):
    ledger = Ledger(tmp_path / "ledger.db")
    assert ledger.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    run = new_run(ledger, tmp_path)
    assert run.id == "1-train" and run.dir.is_dir() and run.status is RunStatus.RUNNING
    ledger.add_trial(run.id, 0, [], [], seed=0)
    ledger.start_trial(run.id, 0, {"pid": 1})
    ledger.finish_trial(
        run.id, 0, TrialEnd(TrialStatus.SUCCEEDED, metric_name="accuracy", metric=0.5, duration_s=1.0)
    )
    ledger.start_trial(run.id, 0, {"pid": 2}, restart=True, reason="killed")
    trial = ledger.trial(run.id, 0)
    assert trial.restarts == 1 and trial.status is TrialStatus.RUNNING
    kinds = [e.kind for e in ledger.events(run.id)]
    assert kinds == ["run-created", "trial-proposed", "trial-started", "trial-succeeded", "trial-restarted"]
    assert ledger.run("1").id == run.id  # by its number too
    with pytest.raises(LedgerError, match="no run 'nope'"):
        ledger.run("nope")


def test_a_second_orchestrator_cannot_claim_a_run_whose_owner_lives(tmp_path):
    ledger = Ledger(tmp_path / "ledger.db")
    run = new_run(ledger, tmp_path)
    assert ledger.claim_run(run.id) is None
    other = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            from pathlib import Path
            from mlops.ledger import Ledger
            print(Ledger(Path({str(tmp_path / "ledger.db")!r})).claim_run({run.id!r}))
        """),
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        check=True,
    )
    assert f"'pid': {os.getpid()}" in other.stdout  # refused: we are alive
    ledger.release_run(run.id)
    assert ledger.owner(run.id) is None


WRITER = """
import sys
from pathlib import Path
from mlops.domain import TrialStatus
from mlops.ledger import Ledger, TrialEnd
ledger = Ledger(Path(sys.argv[1]))
run = ledger.create_run(name="w", source="/s", ref=None, commit="b" * 40, author="A", code_dir=Path("/"),
    script="w.py", classification={}, runtime="local", metric="accuracy", target=0.8, strategy="tpe",
    max_trials=10**6, settings={}, runs_dir=Path(sys.argv[1]).parent / "runs")
print("ready", flush=True)
n = 0
while True:
    ledger.add_trial(run.id, n, [["set_epochs", {"epochs": n}]], [f"epochs {n}"], seed=n)
    ledger.start_trial(run.id, n, {"pid": n})
    end = TrialEnd(TrialStatus.SUCCEEDED, metric_name="accuracy", metric=0.5, duration_s=0.1)
    ledger.finish_trial(run.id, n, end)
    n += 1
"""


def trials_written(db) -> int:
    """How many trials the writer has committed so far, read beside it (WAL: the reader never blocks it)."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0])


@pytest.mark.parametrize("after", [4, 25, 60])
def test_kill_9_at_any_moment_leaves_a_consistent_ledger(tmp_path, after):
    db = tmp_path / "ledger.db"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db)],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert writer.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + 120
    while trials_written(db) < after:  # killed once that many trials are in, wherever it is then
        assert time.monotonic() < deadline, f"the writer did not record {after} trials in 2 minutes"
        time.sleep(0.01)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    ledger = Ledger(db)
    assert ledger.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    (run,) = ledger.runs()
    trials = ledger.trials(run.id)
    assert len(trials) >= after
    events = ledger.events(run.id)
    for trial in trials:  # every state a trial is in has exactly the events that lead to it
        mine = [e.kind for e in events if e.trial == trial.number]
        expected = {
            TrialStatus.PENDING: ["trial-proposed"],
            TrialStatus.RUNNING: ["trial-proposed", "trial-started"],
            TrialStatus.SUCCEEDED: ["trial-proposed", "trial-started", "trial-succeeded"],
        }[trial.status]
        assert mine == expected
    assert [t.number for t in trials] == list(range(len(trials)))


def test_a_runs_settings_are_typed_and_an_older_ledgers_settings_still_read(tmp_path):
    ledger = Ledger(tmp_path / "ledger.db")
    kept = Settings(target=0.9, seed=7, cluster_metric=ClusterMetric.ARI, warm_start=False).for_run()
    run = new_run(ledger, tmp_path)
    ledger.conn.execute("UPDATE runs SET settings = ? WHERE id = ?", (run_settings_json(kept), run.id))
    ledger.conn.commit()
    assert ledger.run(run.id).settings == kept
    # An older mlops kept every setting, some with names this one does not keep, and not always all of these.
    old = (
        '{"cluster_metric": "silhouette", "memory_mb": 4096, "seed": 3, "strategy": "ladder", "target": 0.75}'
    )
    ledger.conn.execute("UPDATE runs SET settings = ? WHERE id = ?", (old, run.id))
    ledger.conn.commit()
    read = ledger.run(run.id).settings
    assert read == RunSettings(target=0.75, strategy=StrategyName.LADDER, seed=3)
    assert read.identity()["strategy"] == "ladder"
    ledger.conn.execute("UPDATE runs SET settings = ? WHERE id = ?", ('{"strategy": "grid"}', run.id))
    ledger.conn.commit()
    with pytest.raises(LedgerError, match="setting strategy 'grid'"):
        ledger.run(run.id)
