"""A training under way in another process: its command, its epochs as they are recorded, waiting for an
event, and the Jenkins entry points run as Jenkins runs them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.repos import ROOT


def run_command(repo: Path, ws: Path, runtime: str) -> list[str]:
    """`mlops run` of ``repo``: one trial, a target it does not reach, no restart."""
    return ["run", str(repo), "--workspace", str(ws), "--runtime", runtime, "--max-trials", "1",
            "--target", "0.999", "--max-restarts", "0"]  # fmt: skip


def epochs(trial_dir: Path) -> int:
    """The epochs the trial's launches recorded so far (its events, as they are written)."""
    try:
        lines = (trial_dir / "events.jsonl").read_text().splitlines()
    except OSError:
        return 0
    return sum(1 for line in lines if '"event": "epoch"' in line)


def wait_for(condition: Callable[[], bool], within_s: float, what: str) -> None:
    """Until ``condition()`` holds (looked at every 0.2 s); an assertion error naming ``what`` after
    ``within_s``."""
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {within_s:g} s"
        time.sleep(0.2)


def job(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m jobs.NAME ARGS``, as a Jenkins step runs it."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "-m", f"jobs.{name}", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
