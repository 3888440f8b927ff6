"""Attacks on what a trial can reach and keep: processes that outlive it, memory over its limit, the
network, the cloud metadata address, the dataset cache, the log. Each case is a pushed script run by
`mlops run` on both runtimes, and a check that the thing did not happen."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psutil
import pytest

from tests.support.attacks import (
    files_holding,
    metadata_block,
    pushed,
    run_pushed,
    runs,
    trial_of,
    work_file,
)

pytestmark = pytest.mark.slow


@pytest.fixture(params=["local", pytest.param("docker", marks=pytest.mark.docker)])
def runtime(request):
    if request.param == "docker":
        request.getfixturevalue("docker_images")
    return request.param


OUTLIVE = """
import os, subprocess, sys, time
subprocess.Popen(["sleep", "{marker}"], start_new_session=True)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        open("detached.txt", "w").write("up")
        os.execvp("sleep", ["sleep", "{marker}"])
    os._exit(0)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-c", {heartbeat!r}, "{marker}"])
    os._exit(0)
deadline = time.time() + 120
while time.time() < deadline and not all(map(os.path.exists, ["detached.txt", "heartbeat.txt"])):
    time.sleep(0.05)
"""
# A daemon that writes the time every 0.1 s, the marker in its command line like the others'.
HEARTBEAT = """
import time
while True:
    with open("heartbeat.txt", "w") as fh:
        fh.write(str(time.time()))
    time.sleep(0.1)
"""


def marked(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if marker in (proc.info.get("cmdline") or []):
            found.append(proc)
    return found


def test_no_process_outlives_its_trial(tmp_path, runtime):
    workspace = tmp_path / "ws"
    marker = f"1000.{uuid.uuid4().int % 10**6}"
    script = OUTLIVE.format(marker=marker, heartbeat=HEARTBEAT)
    done = run_pushed(pushed(tmp_path, "lingers", script), workspace, runtime)
    assert done.returncode == 0, done.stderr
    run = runs(workspace)[0]
    # The daemons did start: the detached one said so, the heartbeat beat.
    assert work_file(workspace, run, "detached.txt") == "up"
    assert work_file(workspace, run, "heartbeat.txt") is not None
    # The run is over: none of the three is left (each has the marker in its command line), at once.
    assert marked(marker) == []


GRANDCHILD = """
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        block = bytearray(500 * 2**20)
        for i in range(0, len(block), 4096):
            block[i] = 1
        open("held.txt", "w").write("500 MB")
        time.sleep(120)
    os._exit(0)
time.sleep(8)
print("held" if os.path.exists("held.txt") else "not held")
"""


def test_memory_held_in_a_grandchild_counts_against_the_limit(tmp_path, runtime):
    workspace = tmp_path / "ws"
    done = run_pushed(pushed(tmp_path, "hog", GRANDCHILD), workspace, runtime, "--memory", "300")
    trial = trial_of(workspace, runs(workspace)[0])
    assert trial["status"] == "failed" and trial["end_reason"] == "oom", (trial, done.stdout)


REACH = """
import socket
reached = []
for host, port in {targets!r}:
    s = socket.socket()
    s.settimeout(5)
    try:
        s.connect((host, port))
        reached.append(host)
    except OSError as e:
        print(host, "unreachable:", e)
    finally:
        s.close()
try:
    socket.getaddrinfo("example.com", 443)
    reached.append("dns")
except OSError as e:
    print("dns:", e)
open("reached.txt", "w").write(" ".join(reached))
"""
# This machine's network accepts TCP to any outside address (so a connection that succeeds proves the
# network is there); the metadata address is the one a cloud VM serves its credentials on.
OUTSIDE = ("10.255.255.1", 80)
METADATA = ("169.254.169.254", 80)
TRIAL_UID = 65534  # the user local trials run as when mlops runs as root, which the firewall rule names


def reached_from_here(folder: Path, targets: list[tuple[str, int]]) -> list[str]:
    """The trial's own connection attempts, made by this process's user on this machine, outside any
    sandbox and container: where no rule of scripts/sandbox-setup.sh applies."""
    folder.mkdir()
    script = REACH.format(targets=targets)
    subprocess.run([sys.executable, "-c", script], cwd=folder, capture_output=True, timeout=120, check=True)
    return (folder / "reached.txt").read_text().split()


def test_no_network_means_none_and_the_network_means_some(tmp_path, runtime):
    workspace = tmp_path / "ws"
    repo = pushed(tmp_path, "caller", REACH.format(targets=[OUTSIDE]))
    assert run_pushed(repo, workspace, runtime, "--no-network").returncode == 0
    assert work_file(workspace, runs(workspace)[0], "reached.txt") == ""
    assert run_pushed(repo, workspace, runtime, "--new-run").returncode == 0
    assert OUTSIDE[0] in work_file(workspace, runs(workspace)[1], "reached.txt")  # the control


def test_the_cloud_metadata_address_is_unreachable(tmp_path, runtime):
    # The control: without the rule the address answers here, so a trial that cannot reach it is blocked
    # by the rule, not by a network that reaches nothing at that address anyway.
    assert os.getuid() != TRIAL_UID
    assert METADATA[0] in reached_from_here(tmp_path / "control", [METADATA]), (
        "the metadata address does not answer on this machine even without the rule: "
        "this test cannot tell the rule blocks it"
    )
    workspace = tmp_path / "ws"
    repo = pushed(tmp_path, "metadata", REACH.format(targets=[OUTSIDE, METADATA]))
    assert run_pushed(repo, workspace, runtime).returncode == 0
    reached = work_file(workspace, runs(workspace)[0], "reached.txt").split()
    assert OUTSIDE[0] in reached
    assert METADATA[0] not in reached, f"scripts/sandbox-setup.sh recorded: {metadata_block(runtime)}"


PLANT = """
import os
for variable in ("SCIKIT_LEARN_DATA", "KERAS_HOME", "TORCH_HOME"):
    folder = os.environ.get(variable) or os.path.expanduser("~/" + variable.lower())
    os.makedirs(folder, exist_ok=True)
    open(os.path.join(folder, "iris.csv"), "w").write("{marker}")
for folder in ("/cache", "/tmp"):
    try:
        open(os.path.join(folder, "iris.csv"), "w").write("{marker}")
    except OSError:
        pass
print("planted")
"""
READ = """
import glob, os
seen = []
for variable in ("SCIKIT_LEARN_DATA", "KERAS_HOME", "TORCH_HOME"):
    folder = os.environ.get(variable) or os.path.expanduser("~/" + variable.lower())
    seen += glob.glob(os.path.join(folder, "**", "*"), recursive=True)
seen += glob.glob("/cache/**/*", recursive=True) + glob.glob("/tmp/*")
found = [p for p in seen if os.path.isfile(p) and "{marker}" in open(p, errors="replace").read()]
open("found.txt", "w").write(" ".join(found))
"""


def test_a_file_planted_in_the_dataset_cache_is_not_read_by_another_repository(tmp_path, runtime):
    workspace = tmp_path / "ws"
    marker = f"planted-{uuid.uuid4().hex[:8]}"
    planter = pushed(tmp_path, "planter", PLANT.format(marker=marker))
    assert run_pushed(planter, workspace, runtime).returncode == 0
    reader = pushed(tmp_path, "reader", READ.format(marker=marker))
    assert run_pushed(reader, workspace, runtime).returncode == 0
    assert work_file(workspace, runs(workspace)[1], "found.txt") == ""
    # The control: the planter's own next run finds what it planted (its cache is its own, and kept).
    again = pushed(tmp_path, "planter", READ.format(marker=marker))
    assert run_pushed(again, workspace, runtime).returncode == 0
    assert work_file(workspace, runs(workspace)[2], "found.txt") != ""


SECRET = "sk-live-4242-secret-value"
PRINT_SECRET = """
import os, sys
value = os.environ.get("MY_APIKEY", "not passed")
print("the key is", value)
print("half", value[:10], end="", flush=True)
print(value[10:], flush=True)
sys.stderr.write("stderr: " + value + "\\n")
raise RuntimeError("failing with " + value)
"""


def test_a_secret_the_script_prints_is_masked_in_every_log(tmp_path, runtime):
    """The operator passes MY_APIKEY to trainings (trial_env); whatever the script does with it, the logs
    mlops writes (the trial's log, the ledger, the report, the console) show a mask, never the value."""
    workspace = tmp_path / "ws"
    env = {"MY_APIKEY": SECRET, "MLOPS_TRIAL_ENV": "MY_APIKEY"}
    done = run_pushed(pushed(tmp_path, "leaky", PRINT_SECRET), workspace, runtime, "-v", env=env)
    run = runs(workspace)[0]
    assert trial_of(workspace, run)["status"] == "failed", done.stderr  # the script raised
    log = (workspace / "runs" / run["run"] / "trials" / "0" / "log.txt").read_text()
    assert "the key is ********" in log and "stderr: ********" in log and "half ********" in log
    assert SECRET not in done.stdout + done.stderr
    leaks = [p.name for p in files_holding(workspace, SECRET)]
    # The trial's own files (what the harness wrote inside it) are the script's; what mlops writes is not.
    assert set(leaks) <= {"outcome.json"}, leaks
    assert "********" in trial_of(workspace, run)["error"]
