"""The six Jenkins entry points, each in its own process, passing what they made through the ledger."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support.processes import run_cli
from tests.support.repos import ROOT
from tests.support.scripts import KMEANS


def job(name: str, *args: str, cwd) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "-m", f"jobs.{name}", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_jobs_1_to_5_run_the_chain_one_process_at_a_time(repo_factory, tmp_path):
    repo = repo_factory({"segments.py": KMEANS})
    ws = ["--workspace", str(tmp_path / "ws")]
    pulled = job("job1_pull", str(repo), *ws, cwd=tmp_path)
    assert pulled.returncode == 0, pulled.stderr
    commit = pulled.stdout.strip().splitlines()[-1]
    planned = job("job2_classify", "--runtime", "local", *ws, cwd=tmp_path)
    assert planned.returncode == 0, planned.stderr
    (run_id,) = [line for line in planned.stdout.splitlines() if line.endswith("-segments")]
    trained = job("job3_train", "--runtime", "local", *ws, cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    trials = json.loads(run_cli("show", run_id, "--json", *ws, cwd=tmp_path).stdout)["trial_list"]
    assert [t["number"] for t in trials] == [0]  # job 3 trains the code as pushed, nothing more
    tuned = job("job4_tweak", "--runtime", "local", *ws, cwd=tmp_path)
    assert tuned.returncode == 0, tuned.stderr
    notified = job("job5_notify", *ws, cwd=tmp_path)
    assert notified.returncode == 0, notified.stderr
    assert "report: " in notified.stdout
    summary = json.loads(run_cli("show", run_id, "--json", *ws, cwd=tmp_path).stdout)
    assert summary["commit"] == commit and summary["reached"] is True
    assert summary["report"] and (tmp_path / "ws" / "runs" / run_id / "junit.xml").exists()
    monitor = job("job6_monitor", "--once", *ws, cwd=tmp_path)
    assert monitor.returncode == 0 and "taking over" not in monitor.stdout  # nothing left orphaned


def test_resuming_a_run_with_other_settings_is_refused(repo_factory, tmp_path):
    repo = repo_factory({"segments.py": KMEANS})
    ws = ["--workspace", str(tmp_path / "ws")]
    assert job("job1_pull", str(repo), *ws, cwd=tmp_path).returncode == 0
    assert job("job2_classify", "--runtime", "local", "--target", "0.8", *ws, cwd=tmp_path).returncode == 0
    refused = run_cli(
        "run", str(repo), "--runtime", "local", "--target", "0.9", "--strategy", "ladder", *ws, cwd=tmp_path
    )
    assert refused.returncode != 0
    assert "started with other settings (target 0.8 -> 0.9, strategy tpe -> ladder)" in refused.stderr
    history = run_cli("history", "--json", *ws, cwd=tmp_path).stdout.splitlines()
    assert [json.loads(line)["status"] for line in history] == ["running"]  # kept, not mixed, not replaced
