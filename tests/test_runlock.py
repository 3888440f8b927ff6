"""One run per commit and script at a time: a second `mlops run` (or job) while the first trains says who
runs it and how to follow it, exits 3 and writes nothing; the lock dies with its holder (kill -9), and job 6
takes over the run as before. Before, the second command exited 0 printing `running: None` and wrote a
report in the middle of the other's run."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from jobs.runlock import RunLocks
from tests.support.background import epochs, job, run_command, wait_for
from tests.support.processes import run_cli, run_cli_background
from tests.support.repos import make_repo
from tests.support.scripts import SLOW_KERAS


def rows(ws: Path) -> dict[str, int]:
    with sqlite3.connect(ws / "ledger.db") as db:
        return {
            t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("runs", "trials", "events")
        }  # noqa: S608


@pytest.mark.slow
def test_a_second_run_of_a_commit_in_progress_is_refused_and_the_lock_dies_with_its_holder(tmp_path):
    repo = make_repo(tmp_path / "repo", {"slow.py": SLOW_KERAS.replace("EPOCHS", "12")})
    ws = tmp_path / "ws"
    run_dir = ws / "runs" / "1-slow"
    first = run_cli_background(*run_command(repo, ws, "local"), cwd=tmp_path)
    try:
        wait_for(lambda: epochs(run_dir / "trials" / "0") >= 1, 600, "the first run's training")
        before = rows(ws)
        planned = (ws / "current-runs.json").stat().st_mtime_ns

        second = run_cli(*run_command(repo, ws, "local"), cwd=tmp_path)
        assert second.returncode == 3, second.stdout[-2000:] + second.stderr
        assert (
            "run 1-slow (slow.py at " in second.stderr
            and f"in process {first.pid} (mlops run " in second.stderr
        )
        assert "follow it with `mlops show 1-slow`" in second.stderr
        job5 = job("job5_notify", "--workspace", str(ws), cwd=tmp_path)
        assert job5.returncode == 3 and "in progress in process" in job5.stderr
        assert rows(ws) == before  # no run, no trial, no event
        assert (ws / "current-runs.json").stat().st_mtime_ns == planned
        assert not (run_dir / "report.html").exists() and not (run_dir / "junit.xml").exists()
        assert first.poll() is None  # the first one was left alone

        os.kill(first.pid, signal.SIGKILL)  # its lock goes with it: nothing blocks the next command
        first.wait(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    monitor = job("job6_monitor", "--once", "--workspace", str(ws), "--runtime", "local", cwd=tmp_path)
    assert monitor.returncode == 0, monitor.stdout[-3000:] + monitor.stderr
    assert "taking over 1 run(s) whose orchestrator is gone: 1-slow" in monitor.stdout
    # Its training went on meanwhile: followed again, or read if it ended first (never trained again).
    assert "re-attached to 1-slow trial 0" in monitor.stdout or "ended while mlops was away" in monitor.stdout
    third = run_cli(*run_command(repo, ws, "local"), cwd=tmp_path)
    assert third.returncode == 0 and "was already tuned: run 1-slow" in third.stdout


def test_a_lock_is_held_once_per_process_and_released_when_its_holder_ends(tmp_path):
    import subprocess
    import sys

    locks = RunLocks(tmp_path / "locks")
    assert locks.hold("k") is None and locks.hold("k") is None  # held: taking it again is a no-op
    script = (
        "import sys, time; from pathlib import Path; sys.path.insert(0, sys.argv[2])\n"
        "from jobs.runlock import RunLocks\n"
        "print(RunLocks(Path(sys.argv[1])).hold('k'), flush=True)\n"
        "time.sleep(60)\n"
    )
    root = str(Path(__file__).resolve().parent.parent)
    other = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "locks"), root],
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        said = other.stdout.readline() if other.stdout else ""
        assert said.startswith("Holder(pid=" + str(os.getpid()))  # ours, with our pid
        locks.release_all()
        taker = subprocess.run([sys.executable, "-c", script.replace("time.sleep(60)", ""),
                                str(tmp_path / "locks"), root], capture_output=True, text=True)  # fmt: skip
        assert taker.stdout.strip() == "None"  # released: the next one takes it
    finally:
        other.kill()
        other.wait()
    start = time.monotonic()
    assert locks.hold("k") is None and time.monotonic() - start < 1  # a killed holder holds nothing
