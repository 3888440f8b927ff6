"""Trials on a real Ray cluster of two nodes started on this machine: the chain with parallel trials, a node
killed under a training, and the bad input a cluster brings (no cluster, no node that fits, storage a node
cannot write, a GPU nobody has). The runtime contract suite runs on Ray too (tests/test_runtime_contract.py)."""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import time
from pathlib import Path

import psutil
import pytest

from mlops.errors import TrialLaunchError
from mlops.runtime.base import TrialSpec
from tests.support.processes import run_cli, run_cli_background
from tests.support.ray_cluster import free_port, start_cluster
from tests.support.repos import ROOT, make_repo
from tests.support.scripts import SLOW_KERAS
from tests.support.trials import trial_spec

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_no_cluster_at_the_address_is_exit_3_naming_it(tmp_path):
    repo = make_repo(
        tmp_path / "repo", {"k.py": "from sklearn.cluster import KMeans\nKMeans(2).fit([[0], [1]])\n"}
    )
    address = f"127.0.0.1:{free_port()}"
    started = time.time()
    done = run_cli(
        "run",
        str(repo),
        "--runtime",
        "ray",
        "--ray-address",
        address,
        "--workspace",
        str(tmp_path / "ws"),
        cwd=tmp_path,
    )
    assert done.returncode == 3 and f"no Ray cluster answers at {address}" in done.stderr
    assert time.time() - started < 30


def test_the_example_models_run_two_trials_at_once_on_the_cluster(ray_cluster, tmp_path):
    ws = tmp_path / "ws"
    done = run_cli(
        "run", str(ROOT / "models"), "--runtime", "ray", "--ray-address", ray_cluster.address,
        "--parallel", "2", "--max-trials", "3", "--workspace", str(ws), cwd=tmp_path, timeout=1500,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert "runtime: ray (cluster at" in done.stdout and "3 node(s), 4 CPUs" in done.stdout
    runs = [
        json.loads(line)
        for line in run_cli("history", "--json", "--workspace", str(ws), cwd=tmp_path).stdout.splitlines()
    ]
    assert {r["script"] for r in runs} == {"ann.py", "cnn.py", "kmeans.py"}
    assert all(r["reached"] for r in runs) and all(r["runtime"] == "ray" for r in runs)


def test_a_node_that_dies_under_a_trial_takes_nothing_with_it(tmp_path):
    """The orchestrator is `mlops run` in a process of its own (a Ray driver dies with the raylet it is
    attached to, and the node killed may be that one): if it dies too, the same command is run again."""
    cluster = start_cluster(workers=2)
    repo = make_repo(tmp_path / "repo", {"slow.py": SLOW_KERAS.replace("EPOCHS", "6")})
    ws = tmp_path / "ws"
    command = ["run", str(repo), "--runtime", "ray", "--ray-address", cluster.address, "--max-trials", "1",
               "--target", "0.999", "--max-restarts", "3", "--workspace", str(ws)]  # fmt: skip
    try:
        first = run_cli_background(*command, cwd=tmp_path)
        log = ws / "runs" / "1-slow" / "trials" / "0" / "log.txt"
        deadline = time.time() + 300
        while "[mlops] epoch 2/" not in (log.read_text() if log.exists() else "") and time.time() < deadline:
            time.sleep(0.2)
        handle = json.loads(
            sqlite3.connect(ws / "ledger.db").execute("SELECT handle FROM trials").fetchone()[0]
        )
        killed = cluster.label_of(handle["node"])
        cluster.kill_node(killed)
        if first.wait(timeout=600) != 0:  # its driver died with the node: the same command carries the run on
            again = run_cli(*command, cwd=tmp_path, timeout=600)
            assert again.returncode == 0, again.stdout[-2000:] + again.stderr
    finally:
        cluster.stop()
    shown = run_cli("show", "1-slow", "--json", "--workspace", str(ws), cwd=tmp_path)
    (trial,) = json.loads(shown.stdout)["trial_list"]
    assert trial["status"] == "succeeded" and trial["restarts"] >= 1, trial
    metrics = json.loads((Path(trial["dir"]) / "metrics.json").read_text())
    assert (
        metrics["resumed"] and metrics["resumed"][0]["epoch"] >= 2
    )  # from its checkpoint, not from the start
    assert sorted({h["epoch"] for h in metrics["history"]}) == list(range(1, 7))


def test_a_trial_no_node_can_take_fails_with_what_it_asked_for(ray_cluster, tmp_path):
    from mlops.runtime.ray_runtime import RayRuntime

    runtime = RayRuntime(tmp_path / "ws", ray_cluster.address, schedule_timeout_s=5)
    runtime._init()
    for spec, says in [
        (trial_spec(tmp_path / "cpus", "huge", "print(1)\n", cpus=64), "asks for 64 CPUs"),
        (_with_gpus(trial_spec(tmp_path / "gpus", "gpu", "print(1)\n"), 1), "1 GPUs"),
    ]:
        started = time.time()
        with pytest.raises(TrialLaunchError, match=says) as caught:
            runtime.run(spec)
        assert "no node of the cluster" in str(caught.value) and time.time() - started < 30
    assert runtime.cleanup(keep=set()) == []  # nothing left waiting for a node


def _with_gpus(spec: TrialSpec, gpus: int) -> TrialSpec:
    from dataclasses import replace

    return replace(spec, gpus=gpus)


def test_a_trial_folder_a_node_cannot_write_is_a_launch_error_naming_the_node(ray_cluster, tmp_path):
    from dataclasses import replace

    from mlops.runtime.ray_runtime import RayRuntime

    runtime = RayRuntime.connect(tmp_path / "ws", ray_cluster.address)
    spec = trial_spec(tmp_path, "nowhere", "print(1)\n")
    unwritable = Path("/proc/mlops-trial")  # no node can make a folder there, root or not
    with pytest.raises(TrialLaunchError, match=r"node \w+ cannot write the trial folder /proc/mlops-trial"):
        runtime.run(replace(spec, trial_dir=unwritable, source_file=spec.source_file))


READS_THE_CACHE = """
import os
home = os.environ["SCIKIT_LEARN_DATA"]
rows = open(os.path.join(home, "heart.csv")).read().splitlines()  # imported: linked into the cache
fetched = os.path.join(os.environ["KERAS_HOME"], "datasets", "fetched.txt")  # as a download would leave it
seen = os.path.exists(fetched)
os.makedirs(os.path.dirname(fetched), exist_ok=True)
open(fetched, "w").write("once")
open("accuracy.txt", "w").write(str(0.5 + 0.1 * len(rows) + 0.2 * seen))
"""


def test_trials_on_the_cluster_read_the_imported_data_sets_and_share_one_cache(ray_cluster, tmp_path):
    """A data set is fetched once, not once a trial: a Ray trial's library caches are its repository's
    cache in the workspace, as on the other runtimes, with the imported data sets linked in."""
    from mlops.runtime.ray_runtime import RayRuntime

    ws = tmp_path / "ws"
    csv = tmp_path / "heart.csv"
    csv.write_text("age,target\n63,1\n")
    assert (
        run_cli(
            "datasets", "import", str(csv), "--kind", "sklearn", "--workspace", str(ws), cwd=tmp_path
        ).returncode
        == 0
    )
    runtime = RayRuntime.connect(ws, ray_cluster.address)
    values = []
    for number in (0, 1):
        spec = trial_spec(tmp_path, f"cached{number}", READS_THE_CACHE)  # one code folder: one cache
        handle = runtime.run(spec)
        log = "\n".join(runtime.logs(handle))
        assert runtime.wait(handle).ok, log
        runtime.remove(handle)
        values.append(json.loads((spec.trial_dir / "metrics.json").read_text())["value"])
    # Two rows of the imported file both times; the second trial sees what the first left in the cache.
    assert values == [pytest.approx(0.7), pytest.approx(0.9)]


def test_the_cluster_going_away_mid_run_stops_it_and_the_same_command_carries_it_on(tmp_path):
    """The whole cluster (head and worker) is killed while trial 1 trains, trial 0 being done: the command
    stops at once, exit 3, naming the address, with the ledger as it was. The cluster is started again at
    the same address and the same command carries the run on: trial 0 is not run again, trial 1 resumes
    from its checkpoint."""
    cluster = start_cluster(workers=1)
    repo = make_repo(tmp_path / "repo", {"slow.py": SLOW_KERAS.replace("EPOCHS", "4")})
    ws = tmp_path / "ws"
    command = ["run", str(repo), "--runtime", "ray", "--ray-address", cluster.address, "--max-trials", "2",
               "--target", "0.999", "--workspace", str(ws)]  # fmt: skip
    trials = ws / "runs" / "1-slow" / "trials"
    try:
        first = run_cli_background(*command, cwd=tmp_path)
        deadline = time.time() + 400
        while time.time() < deadline and "[mlops] epoch 2/" not in _text(trials / "1" / "log.txt"):
            time.sleep(0.2)
        before = _text(trials / "0" / "log.txt")
        cluster.stop()
        stopped = time.time()
        code = first.wait(timeout=120)
        said = _text(tmp_path / "mlops-background.log")
        # Ray itself ends a driver 60 s after its cluster is gone, with a message of its own: ours comes first
        assert code == 3 and time.time() - stopped < 50, said[-2000:]
        assert f"the Ray cluster at {cluster.address} went away in the middle of run 1-slow" in said
        assert "run the same command again" in said
        ledger = sqlite3.connect(ws / "ledger.db")
        rows = ledger.execute("SELECT number, status FROM trials ORDER BY number").fetchall()
        ledger.close()
        assert rows == [(0, "succeeded"), (1, "running")]
        cluster = start_cluster(workers=1, port=cluster.port)
        again = run_cli(*command, cwd=tmp_path, timeout=600)
        assert again.returncode == 0, again.stdout[-2000:] + again.stderr
        assert "resuming run 1-slow" in again.stdout and "trial 0 (" not in again.stdout
    finally:
        cluster.stop()
    assert _text(trials / "0" / "log.txt") == before  # trial 0 was not run again
    shown = json.loads(run_cli("show", "1-slow", "--json", "--workspace", str(ws), cwd=tmp_path).stdout)
    zero, one = shown["trial_list"]
    assert zero["status"] == "succeeded" and zero["restarts"] == 0, zero
    assert one["status"] == "succeeded" and one["restarts"] == 1, one
    metrics = json.loads((trials / "1" / "metrics.json").read_text())
    assert metrics["resumed"] and metrics["resumed"][0]["epoch"] >= 2  # from its checkpoint
    history = run_cli("history", "--json", "--workspace", str(ws), cwd=tmp_path).stdout.splitlines()
    assert len(history) == 1  # the same run, carried on, not a new one


def _text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def test_a_node_without_the_data_mapped_for_the_trial_refuses_it_naming_the_node_and_folder(tmp_path):
    """The cluster's worker node does not see the folder data: maps (an empty tmpfs hides its parent, in
    the node's own mount namespace: a machine on which the shared folder is not mounted), while the machine
    running mlops does, so the run's own check of data: passes. The node refuses the trial before the
    script starts, naming itself and the folder, instead of the script failing on a missing file."""
    site = tmp_path / "site"
    (site / "digits").mkdir(parents=True)
    (site / "digits" / "x.csv").write_text("0,0\n0,1\n5,5\n5,6\n")
    script = (
        "import numpy as np\nfrom sklearn.cluster import KMeans\n"
        "KMeans(2, n_init=1).fit(np.loadtxt('/mnt/digits/x.csv', delimiter=','))\n"
    )
    repo = make_repo(tmp_path / "repo", {"read.py": script})
    cluster = start_cluster(workers=1, hidden=(site,))
    try:
        done = run_cli(
            "run", str(repo), "--runtime", "ray", "--ray-address", cluster.address, "--max-trials", "1",
            "--workspace", str(tmp_path / "ws"), cwd=tmp_path, env={"MLOPS_DATA": f"{{/mnt/digits: {site}/digits}}"},
        )  # fmt: skip
    finally:
        cluster.stop()
    said = done.stdout + done.stderr
    assert done.returncode != 0, said[-2000:]
    assert f"has no {site}/digits, which data: maps for /mnt/digits" in said, said[-2000:]
    assert "node " in said and "FileNotFoundError" not in said


def test_a_trial_killed_with_its_node_resumes_from_the_checkpoint_held_in_storage(tmp_path):
    """--storage file://...: the same pyarrow.fs code as s3:// (which was not run here). The orchestrator
    is killed, then the node under the trial, and the trial folder's checkpoints are deleted: the same
    command starts the trial again, and its new actor restores the checkpoint from storage, not from the
    trial folder. Storage keeps nothing once the trial has succeeded."""
    cluster = start_cluster(workers=2)
    store = tmp_path / "store"
    repo = make_repo(tmp_path / "repo", {"slow.py": SLOW_KERAS.replace("EPOCHS", "6")})
    ws = tmp_path / "ws"
    command = ["run", str(repo), "--runtime", "ray", "--ray-address", cluster.address, "--max-trials", "1",
               "--target", "0.999", "--storage", f"file://{store}", "--workspace", str(ws)]  # fmt: skip
    trial = ws / "runs" / "1-slow" / "trials" / "0"
    try:
        first = run_cli_background(*command, cwd=tmp_path)
        deadline = time.time() + 300
        while time.time() < deadline and max(_stored_epochs(store), default=0) < 2:
            time.sleep(0.2)
        first.kill()
        first.wait(timeout=30)
        handle = json.loads(
            sqlite3.connect(ws / "ledger.db").execute("SELECT handle FROM trials").fetchone()[0]
        )
        cluster.kill_node(cluster.label_of(handle["node"]))
        deadline = time.time() + 60
        while time.time() < deadline and _processes_of(trial):
            time.sleep(0.2)
        assert not _processes_of(trial)
        shutil.rmtree(trial / "checkpoints")
        stored = max(_stored_epochs(store))
        again = run_cli(*command, cwd=tmp_path, timeout=600)
        assert again.returncode == 0, again.stdout[-2000:] + again.stderr
    finally:
        cluster.stop()
    assert f"checkpoint file(s) restored from file://{store}" in (trial / "log.txt").read_text()
    shown = run_cli("show", "1-slow", "--json", "--workspace", str(ws), cwd=tmp_path)
    (record,) = json.loads(shown.stdout)["trial_list"]
    assert record["status"] == "succeeded" and record["restarts"] >= 1, record
    metrics = json.loads((trial / "metrics.json").read_text())
    assert metrics["resumed"][0]["epoch"] == stored >= 2  # the epoch storage held, though the folder had none
    assert sorted({h["epoch"] for h in metrics["history"]}) == list(range(1, 7))
    assert not [p for p in store.rglob("*") if p.is_file()]  # a succeeded trial leaves nothing in storage


def _stored_epochs(store: Path) -> list[int]:
    epochs = []
    for meta in store.rglob("meta.json"):
        with contextlib.suppress(OSError, ValueError):
            epochs.append(int(json.loads(meta.read_text())["epoch"]))
    return epochs


def _processes_of(trial: Path) -> list[psutil.Process]:
    """The keeper and harness of the trial (their command lines name its folder)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if str(trial) in " ".join(process.info["cmdline"] or []):
            found.append(process)
    return found


def test_storage_a_node_cannot_write_is_a_launch_error_naming_the_node(ray_cluster, tmp_path):
    from mlops.runtime.ray_runtime import RayRuntime

    runtime = RayRuntime.connect(tmp_path / "ws", ray_cluster.address, storage="/proc/mlops-store")
    spec = trial_spec(tmp_path, "nostore", "print(1)\n")
    with pytest.raises(
        TrialLaunchError, match=r"node \w+ cannot use the checkpoint storage /proc/mlops-store \(.+\)"
    ):
        runtime.run(spec)
    assert runtime.cleanup(keep=set()) == []
