"""Stopping mlops the way Jenkins aborts a build (SIGTERM to the `mlops run` process, or to its process
group) and the way a person does (Ctrl-C: SIGINT), with a real Keras training under way; then the same
command resumes the run. Before, SIGTERM ended the command with -15 and no word while the training went on,
and the rerun called the training gone and trained it again."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from pathlib import Path

import psutil
import pytest

from tests.support.background import epochs, job, run_command, wait_for
from tests.support.processes import run_cli, run_cli_background
from tests.support.repos import make_repo
from tests.support.scripts import SLOW_KERAS

pytestmark = pytest.mark.slow


def training_processes(ws: Path) -> list[psutil.Process]:
    """The keepers, sandboxes and harnesses of the workspace still alive."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        with_ws = str(ws.resolve()) in " ".join(proc.info["cmdline"] or [])
        if with_ws and "jobs.cli" not in (proc.info["cmdline"] or []):
            found.append(proc)
    return found


def running_containers(ws: Path) -> list[object]:
    import docker

    client = docker.from_env()
    return client.containers.list(filters={"label": f"mlops.workspace={ws.resolve()}"})


def ledger_events(ws: Path, kind: str) -> list[str]:
    with sqlite3.connect(ws / "ledger.db") as db:
        return [m for (m,) in db.execute("SELECT message FROM events WHERE kind = ?", (kind,))]


@pytest.mark.parametrize(
    "runtime, how, signum",
    [
        ("local", "process", signal.SIGTERM),
        ("local", "group", signal.SIGTERM),
        ("local", "process", signal.SIGINT),
        pytest.param("docker", "group", signal.SIGTERM, marks=pytest.mark.docker),
    ],
    ids=["local-sigterm", "local-sigterm-group", "local-sigint", "docker-sigterm-group"],
)
def test_a_signal_stops_the_training_cleanly_and_the_same_command_resumes_it(
    tmp_path, runtime, how, signum, request
):
    if runtime == "docker":
        request.getfixturevalue("docker_images")
    repo = make_repo(tmp_path / "repo", {"slow.py": SLOW_KERAS.replace("EPOCHS", "6")})
    ws = tmp_path / "ws"
    trial_dir = ws / "runs" / "1-slow" / "trials" / "0"
    first = run_cli_background(*run_command(repo, ws, runtime), cwd=tmp_path)
    try:
        wait_for(lambda: epochs(trial_dir) >= 2, 600, "the training's second epoch")
        (os.killpg if how == "group" else os.kill)(first.pid, signum)
        code = first.wait(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    said = (tmp_path / "mlops-background.log").read_text()
    assert code == 128 + signum, said[-3000:]
    assert f"stopped by {signum.name}" in said and "run the same command again to resume" in said
    assert f"trial 0 stopped by {signum.name}" in said
    assert (training_processes(ws) if runtime == "local" else running_containers(ws)) == []
    (stopped,) = ledger_events(ws, "trial-stopped")
    assert "goes on from its checkpoint" in stopped
    trained_before = epochs(trial_dir)

    again = run_cli(*run_command(repo, ws, runtime), cwd=tmp_path, timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr
    assert "trial 0 resumed: it was stopped by" in again.stdout and "gone" not in again.stdout
    (trial,) = json.loads(run_cli("show", "1-slow", "--json", "--workspace", str(ws), cwd=tmp_path).stdout)[
        "trial_list"
    ]
    assert trial["status"] == "succeeded" and trial["restarts"] == 0, trial
    metrics = json.loads((trial_dir / "metrics.json").read_text())
    assert metrics["resumed"] and metrics["resumed"][-1]["epoch"] >= 2  # from its checkpoint
    assert epochs(trial_dir) - trained_before <= 6 - 2 + 1  # at most the epoch cut short is trained again


def test_a_training_that_ends_while_mlops_is_away_is_read_not_trained_again(tmp_path):
    repo = make_repo(tmp_path / "repo", {"slow.py": SLOW_KERAS.replace("EPOCHS", "3")})
    ws = tmp_path / "ws"
    trial_dir = ws / "runs" / "1-slow" / "trials" / "0"
    first = run_cli_background(*run_command(repo, ws, "local"), cwd=tmp_path)
    try:
        wait_for(lambda: epochs(trial_dir) >= 1, 600, "the training's first epoch")
        os.kill(first.pid, signal.SIGKILL)  # the orchestrator dies; its training goes on alone
    finally:
        first.wait(timeout=60)
    wait_for(lambda: training_processes(ws) == [], 600, "the training's end")

    again = run_cli(*run_command(repo, ws, "local"), cwd=tmp_path, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr
    assert "trial 0 ended while mlops was away: read, not run again" in again.stdout
    started = [e for e in (trial_dir / "events.jsonl").read_text().splitlines() if '"event": "started"' in e]
    assert len(started) == 1  # one launch, not two
    (trial,) = json.loads(run_cli("show", "1-slow", "--json", "--workspace", str(ws), cwd=tmp_path).stdout)[
        "trial_list"
    ]
    assert trial["status"] == "succeeded" and trial["restarts"] == 0 and trial["epochs"] == 3


def test_an_aborted_jenkins_job_4_stops_its_training_and_the_next_build_resumes_it(tmp_path):
    repo = make_repo(tmp_path / "repo", {"slow.py": SLOW_KERAS.replace("EPOCHS", "6")})
    ws = tmp_path / "ws"
    flags = ["--workspace", str(ws), "--runtime", "local", "--max-trials", "1", "--target", "0.999"]
    assert job("job1_pull", str(repo), *flags[:2], cwd=tmp_path).returncode == 0
    assert job("job2_classify", *flags, cwd=tmp_path).returncode == 0
    trial_dir = ws / "runs" / "1-slow" / "trials" / "0"
    tweak = run_cli_background(*flags, cwd=tmp_path, module="jobs.job4_tweak")
    try:
        wait_for(lambda: epochs(trial_dir) >= 2, 600, "the training's second epoch")
        os.killpg(tweak.pid, signal.SIGTERM)  # Jenkins aborts the build
        code = tweak.wait(timeout=120)
    finally:
        if tweak.poll() is None:
            tweak.kill()
    said = (tmp_path / "mlops-background.log").read_text()
    assert code == 143 and "trial 0 stopped by SIGTERM" in said, said[-3000:]
    assert training_processes(ws) == []
    again = job("job4_tweak", *flags, cwd=tmp_path)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr
    assert "trial 0 resumed: it was stopped by SIGTERM" in again.stdout
