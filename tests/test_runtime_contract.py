"""One contract, every runtime: the local process runtime and the Docker runtime behave the same."""

from __future__ import annotations

import json
import os
import textwrap
import time
from pathlib import Path

import pytest

from mlops.domain import EndReason
from mlops.runtime.base import TrialSpec
from mlops.runtime.local import LocalRuntime
from tests.support.trials import trial_spec


@pytest.fixture(
    params=[
        "local",
        pytest.param("docker", marks=pytest.mark.docker),
        pytest.param("ray", marks=[pytest.mark.ray, pytest.mark.slow]),
    ]
)
def runtime(request, tmp_path):
    if request.param == "local":
        yield LocalRuntime(tmp_path / "ws")
        return
    if request.param == "ray":
        from mlops.runtime.ray_runtime import RayRuntime

        cluster = request.getfixturevalue("ray_cluster")
        ray_runtime = RayRuntime.connect(tmp_path / "ws", cluster.address)
        yield ray_runtime
        ray_runtime.cleanup(keep=set())
        return
    docker_runtime = request.getfixturevalue("docker_runtime")
    yield docker_runtime(tmp_path / "ws")


def trial(tmp_path: Path, name: str, script: str, **limits) -> TrialSpec:
    return trial_spec(tmp_path, name, script, **limits)


GOOD = """
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier
    X, y = load_iris(return_X_y=True)
    print("training", flush=True)
    print(DecisionTreeClassifier(random_state=0).fit(X, y).score(X, y))
"""


@pytest.mark.slow
def test_a_trial_that_succeeds_streams_its_log_and_writes_its_metric(runtime, tmp_path):
    spec = trial(tmp_path, "good", GOOD)
    handle = runtime.run(spec)
    lines = list(runtime.logs(handle, follow=True))
    outcome = runtime.wait(handle)
    runtime.remove(handle)
    assert outcome.ok, outcome
    assert "training" in lines and "[mlops] metric accuracy=1.0000 (from score)" in lines
    assert json.loads((spec.trial_dir / "metrics.json").read_text())["value"] == 1.0


def test_a_script_that_raises_exits_1_and_keeps_its_traceback(runtime, tmp_path):
    spec = trial(tmp_path, "raises", "import json\nraise KeyError('label column')\n")
    handle = runtime.run(spec)
    outcome = runtime.wait(handle)
    runtime.remove(handle)
    assert outcome.reason is EndReason.EXITED and outcome.exit_code == 1
    report = json.loads((spec.trial_dir / "outcome.json").read_text())
    assert report["error"] == "KeyError: 'label column'" and report["line"] == 2


def test_the_time_limit_stops_a_trial(runtime, tmp_path):
    spec = trial(tmp_path, "slow", "import time\ntime.sleep(600)\n", timeout_s=1)
    started = time.time()
    handle = runtime.run(spec)
    outcome = runtime.wait(handle)
    runtime.remove(handle)
    assert outcome.reason is EndReason.TIMEOUT
    assert time.time() - started < 30


def test_the_memory_limit_ends_a_trial_as_out_of_memory_not_a_hang(runtime, tmp_path):
    spec = trial(
        tmp_path,
        "hungry",
        "import time\nblocks = [bytearray(32 * 2**20) for _ in range(40)]\ntime.sleep(60)\n",
        memory_mb=256,
    )
    handle = runtime.run(spec)
    outcome = runtime.wait(handle)
    runtime.remove(handle)
    assert outcome.reason is EndReason.OOM, outcome


FILL = """
import time
with open("fill.bin", "wb") as fh:
    for _ in range(300):
        fh.write(b"x" * 2**20)
        fh.flush()
time.sleep(60)
"""


def test_writing_past_the_disk_quota_ends_a_trial_as_disk(runtime, tmp_path):
    spec = trial(tmp_path, "filler", FILL, disk_mb=64)
    handle = runtime.run(spec)
    outcome = runtime.wait(handle)
    runtime.remove(handle)
    assert outcome.reason is EndReason.DISK, outcome
    assert (spec.trial_dir / "source.py").exists()  # the folder is back where it is read from


def test_stop_ends_a_trial(runtime, tmp_path):
    spec = trial(tmp_path, "stopped", "import time\nprint('up', flush=True)\ntime.sleep(600)\n")
    handle = runtime.run(spec)
    for line in runtime.logs(handle):
        if line == "up":
            break
    runtime.stop(handle)
    outcome = runtime.wait(handle)
    runtime.remove(handle)
    assert outcome.reason is EndReason.SIGNAL


@pytest.mark.slow
def test_another_process_can_attach_to_a_running_trial(runtime, tmp_path):
    spec = trial(tmp_path, "attach", "import time\ntime.sleep(3)\n" + textwrap.dedent(GOOD))
    handle = runtime.run(spec)
    fresh = runtime.fresh() if hasattr(runtime, "fresh") else type(runtime)(tmp_path / "ws")
    again = fresh.attach(spec, handle.data)
    assert again is not None
    outcome = fresh.wait(again)
    fresh.remove(again)
    assert outcome.ok, outcome
    assert json.loads((spec.trial_dir / "outcome.json").read_text())["status"] == "ok"
    assert (
        fresh.attach(spec, {"runtime": runtime.name, "pid": 1, "create_time": 0, "container": "gone"}) is None
    )


@pytest.mark.slow
def test_a_process_that_attaches_again_goes_on_with_the_log_without_repeating_it(runtime, tmp_path):
    script = "import time\nprint('first', flush=True)\ntime.sleep(2)\nprint('second', flush=True)\n"
    spec = trial(tmp_path, "relog", script + textwrap.dedent(GOOD))
    handle = runtime.run(spec)
    for line in runtime.logs(handle):
        if line == "first":
            break
    fresh = runtime.fresh() if hasattr(runtime, "fresh") else type(runtime)(tmp_path / "ws")
    again = fresh.attach(spec, handle.data)
    lines = list(fresh.logs(again))
    outcome = fresh.wait(again)
    fresh.remove(again)
    assert outcome.ok, outcome
    assert "second" in lines
    log = (spec.trial_dir / "log.txt").read_text().splitlines()
    assert log.count("first") == 1 and log.count("second") == 1 and log.count("training") == 1


def test_cleanup_removes_strays_of_an_earlier_crash_but_not_those_kept(runtime, tmp_path):
    stray = trial(tmp_path, "stray", "import time\ntime.sleep(600)\n")
    kept = trial(tmp_path, "kept", "import time\ntime.sleep(600)\n")
    handles = [runtime.run(stray), runtime.run(kept)]
    time.sleep(1)
    removed = runtime.cleanup(keep={kept.name})
    assert removed == [stray.name]
    runtime.stop(handles[1])
    runtime.wait(handles[1])
    for handle in handles:
        runtime.remove(handle)


def test_the_training_never_sees_the_secrets_of_the_environment(runtime, tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_SMTP_PASSWORD", "hunter2-smtp")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp-planted")
    spec = trial(
        tmp_path,
        "peek",
        "import os\nprint(sorted(k for k in os.environ if 'SMTP' in k or 'TOKEN' in k))\n"
        "open('accuracy.txt', 'w').write('1')\n",
    )
    handle = runtime.run(spec)
    lines = list(runtime.logs(handle))
    runtime.wait(handle)
    runtime.remove(handle)
    assert "[]" in lines, lines


def test_local_trials_run_at_once_with_a_share_of_the_cores_each_get_cores_of_their_own(tmp_path):
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        pytest.skip("one CPU: nothing to share")  # a fact of the machine, not a missing feature
    runtime = LocalRuntime(tmp_path / "ws")
    script = "import os, time\nprint('cores', sorted(os.sched_getaffinity(0)), flush=True)\ntime.sleep(2)\n"
    handles = [runtime.run(trial(tmp_path / name, name, script, cpus=1.0)) for name in ("one", "two")]
    seen = []
    for handle in handles:
        lines = list(runtime.logs(handle, follow=True))
        runtime.wait(handle)  # it writes no metric: what it printed is what counts
        runtime.remove(handle)
        seen.append(next(line for line in lines if line.startswith("cores")))
    assert seen[0] != seen[1] and all(line.count(",") == 0 for line in seen), (
        seen
    )  # one core each, not both 0


def test_a_runtime_says_what_it_can_do_and_its_optional_verbs_answer(runtime, tmp_path):
    """Its environments are built one way (images, or venvs over an interpreter it has); a runtime that does
    not start trials ahead starts none when asked; with no image asked for, ``prepare`` builds nothing."""
    can = runtime.capabilities
    assert can.images != (can.python is not None)
    if can.python is not None:
        assert Path(can.python).is_file()
    runtime.prepare([], lambda line: pytest.fail(f"nothing was asked, yet: {line}"))
    if not can.starts_ahead:
        runtime.prestart(trial(tmp_path, "ahead", GOOD))
        assert runtime.cleanup(keep=set()) == []  # nothing was started
    runtime.prestart(None)


def test_an_unsandboxed_local_runtime_starts_no_trial_ahead(tmp_path):
    """Started ahead, a trial's libraries load before the harness's guards: only the sandbox makes that
    harmless (mlops/runtime/ahead.py)."""
    assert LocalRuntime(tmp_path / "ws").capabilities.starts_ahead
    plain = LocalRuntime(tmp_path / "ws", sandboxed=False).capabilities
    assert not plain.starts_ahead and not plain.sandboxed and not plain.images
