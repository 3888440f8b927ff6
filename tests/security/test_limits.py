"""Limits that are the trial's own, on both runtimes: what it writes (its folder, work/, /tmp) against its
disk quota, its processes against a limit no other trial shares, and a metric it measured before it was
stopped (its time, its memory) kept. Each case is a pushed script run by `mlops run`, and each would have
passed through before: the quota did not exist, the process limit counted every trial's processes
together, and a trial stopped from outside lost its metric."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import psutil
import pytest

from tests.support.attacks import pushed, run_pushed, runs, trial_of
from tests.support.background import wait_for
from tests.support.processes import run_cli_background

pytestmark = pytest.mark.slow


@pytest.fixture(params=["local", pytest.param("docker", marks=pytest.mark.docker)])
def runtime(request):
    if request.param == "docker":
        request.getfixturevalue("docker_images")
    return request.param


def tree_size(root: Path) -> tuple[int, int]:
    """Bytes and files under ``root`` (links not followed)."""
    size = count = 0
    for path in root.rglob("*"):
        count += 1
        size += path.lstat().st_size
    return size, count


def nothing_left_mounted(folder: Path) -> bool:
    images = list(folder.parent.glob(".*.disk")) + list(folder.parent.glob(".*.fs"))
    return not os.path.ismount(folder) and images == []


FILL_FOLDER = """
with open("fill.bin", "wb") as fh:
    for _ in range(200):  # 200 MB, past a quota of 64
        fh.write(b"x" * 2**20)
print("wrote it all")
"""

FILL_TMP = FILL_FOLDER.replace('"fill.bin"', '"/tmp/fill.bin"')

MANY_FILES = """
import os
os.makedirs("many", exist_ok=True)
for i in range(3000):  # past a quota of 500 files
    open(f"many/{i}.txt", "w").close()
print("made them all")
"""


@pytest.mark.parametrize(
    "script, flags",
    [
        (FILL_FOLDER, ("--disk", "64")),
        (FILL_TMP, ("--disk", "64")),
        (MANY_FILES, ("--disk-files", "500")),
    ],
    ids=["bytes-in-its-folder", "bytes-in-its-tmp", "files"],
)
def test_writing_past_the_disk_quota_ends_the_trial_as_disk_and_leaves_nothing(
    tmp_path, runtime, script, flags
):
    workspace = tmp_path / "ws"
    done = run_pushed(pushed(tmp_path, "filler", script), workspace, runtime, *flags)
    trial = trial_of(workspace, runs(workspace)[0])
    assert trial["status"] == "failed" and trial["failure_class"] == "disk", (trial, done.stdout[-2000:])
    assert trial["end_reason"] == "disk" and "--disk" in trial["hint"]
    folder = Path(trial["dir"])
    size, count = tree_size(folder)
    assert size < 64 * 2**20 and count < 600, (size, count)  # what went over was not copied back
    assert nothing_left_mounted(folder)
    assert "wrote it all" not in done.stdout and "made them all" not in done.stdout


SCRATCH = """
open("scratch.bin", "wb").write(b"x" * 2**20)
"""


def test_work_is_emptied_when_the_run_ends_unless_it_is_kept(tmp_path, runtime):
    repo = pushed(tmp_path, "scratcher", SCRATCH)
    emptied, kept = tmp_path / "emptied", tmp_path / "kept"
    assert run_pushed(repo, emptied, runtime, keep_work=False).returncode == 0
    assert run_pushed(repo, kept, runtime, keep_work=True).returncode == 0
    gone = Path(trial_of(emptied, runs(emptied)[0])["dir"])
    there = Path(trial_of(kept, runs(kept)[0])["dir"])
    assert not (gone / "work").exists() and (gone / "metrics.json").exists()
    assert (there / "work" / "scratch.bin").stat().st_size == 2**20


STORM = """
import os, time
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

X, y = load_iris(return_X_y=True)
print("score", LogisticRegression(max_iter=500).fit(X, y).score(X, y))  # measured before the storm
held = 0
while True:
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        os.closerange(0, 64)
        time.sleep(3600)
        os._exit(0)
    held += 1
print("held", held, "processes", flush=True)
while True:
    time.sleep(1)  # holds them until its time runs out
"""

VICTIM = """
import threading, time
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

threads = [threading.Thread(target=time.sleep, args=(0.2,)) for _ in range(40)]
for t in threads:
    t.start()
for t in threads:
    t.join()
X, y = load_iris(return_X_y=True)
print("score", LogisticRegression(max_iter=500).fit(X, y).score(X, y))
"""


def test_a_fork_storm_starves_no_other_trial_and_keeps_the_metric_it_measured(tmp_path, runtime):
    storm_ws, victim_ws = tmp_path / "storm-ws", tmp_path / "victim-ws"
    storm_repo = pushed(tmp_path, "storm", STORM)
    storm = run_cli_background(
        "run", str(storm_repo), "--workspace", str(storm_ws), "--runtime", runtime, "--max-trials", "1",
        "--target", "0.5", "--max-restarts", "0", "--timeout", "45", cwd=tmp_path,
    )  # fmt: skip
    try:
        log = storm_ws / "runs" / "1-attack" / "trials" / "0" / "log.txt"
        wait_for(lambda: log.exists() and "held " in log.read_text(), 180, "the storm holding its processes")
        held = int(log.read_text().split("held ")[1].split()[0])
        assert 100 < held <= 600, held  # it was stopped at its limit, not before
        victim = run_pushed(pushed(tmp_path, "victim", VICTIM), victim_ws, runtime, timeout=240)
        trial = trial_of(victim_ws, runs(victim_ws)[0])
        assert victim.returncode == 0 and trial["status"] == "succeeded", (trial, victim.stdout[-2000:])
        assert storm.wait(timeout=300) == 0
    finally:
        if storm.poll() is None:
            storm.kill()
    # The victim trained while the storm held its processes (its trial ended after the victim's started).
    started = [json.loads(e)["at"] for e in (Path(trial["dir"]) / "events.jsonl").read_text().splitlines()]
    with sqlite3.connect(storm_ws / "ledger.db") as db:
        (storm_end,) = db.execute("SELECT finished_at FROM trials").fetchone()
    assert started[0] < storm_end
    stormed = trial_of(storm_ws, runs(storm_ws)[0])
    assert stormed["end_reason"] == "timeout", stormed  # not an oom: forks share their pages
    assert stormed["status"] == "succeeded" and stormed["metric"] == pytest.approx(0.9733, abs=0.01)
    assert stormed["metric_source"] == "score, before the timeout" and "kept" in stormed["hint"]
    left = [p for p in psutil.process_iter(["cmdline"]) if str(storm_ws) in " ".join(p.info["cmdline"] or [])]
    assert left == []


HOG_AFTER_MEASURING = """
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

X, y = load_iris(return_X_y=True)
print("score", LogisticRegression(max_iter=500).fit(X, y).score(X, y))
held = []
while True:  # then more memory than it may have
    block = bytearray(50 * 2**20)
    for i in range(0, len(block), 4096):
        block[i] = 1
    held.append(block)
"""


def test_a_metric_measured_before_an_oom_is_kept_labelled(tmp_path, runtime):
    workspace = tmp_path / "ws"
    done = run_pushed(pushed(tmp_path, "hog", HOG_AFTER_MEASURING), workspace, runtime, "--memory", "400")
    trial = trial_of(workspace, runs(workspace)[0])
    assert trial["end_reason"] == "oom", (trial, done.stdout[-2000:])
    assert trial["status"] == "succeeded" and trial["metric"] == pytest.approx(0.9733, abs=0.01)
    assert trial["metric_source"] == "score, before the oom"


LOOP_UNTIL_ACCURATE = """
import keras
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

X, y = load_digits(return_X_y=True)
Xtr, Xte, ytr, yte = train_test_split(X / 16.0, y, random_state=0)
model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, activation="softmax")])
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
accuracy = 0.0
while accuracy < 0.9:  # a step of 0 never gets there: only its time ends it
    model.fit(Xtr, ytr, epochs=1, verbose=0)
    loss, accuracy = model.evaluate(Xte, yte, verbose=0)
    print("round", accuracy, flush=True)
"""


def test_a_script_looping_while_accuracy_is_low_has_its_last_evaluation_when_its_time_runs_out(
    tmp_path, runtime
):
    workspace = tmp_path / "ws"
    repo = pushed(tmp_path, "looper", LOOP_UNTIL_ACCURATE)
    done = run_pushed(repo, workspace, runtime, "--timeout", "50", timeout=600)
    trial = trial_of(workspace, runs(workspace)[0])
    assert trial["end_reason"] == "timeout", (trial, done.stdout[-2000:])
    assert trial["status"] == "succeeded" and trial["metric_source"] == "evaluate, before the timeout"
    events = (Path(trial["dir"]) / "events.jsonl").read_text().splitlines()
    evaluated = [json.loads(e)["value"] for e in events if json.loads(e)["event"] == "measured"]
    assert len(evaluated) >= 2 and trial["metric"] == pytest.approx(evaluated[-1])  # its last round's
    assert trial["metric"] < 0.9
