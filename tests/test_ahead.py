"""Trials started ahead (local runtime): the next trial's harness loads its libraries while the current one
trains, then runs the source it is given; a spec that changed, a run that ended or an orchestrator that
died ends it, and its source record stays as it was given."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil

from mlops.runtime.local import KEEPER, LocalRuntime
from tests.support.processes import HARNESS, run_cli
from tests.support.repos import make_repo
from tests.support.trials import trial_spec

AS_PUSHED = """\
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.datasets import load_iris
    X, y = load_iris(return_X_y=True)
    print("as pushed", LogisticRegression(max_iter=5).fit(X, y).score(X, y))
"""
VARIANT = AS_PUSHED.replace("as pushed", "the variant").replace("max_iter=5", "max_iter=500")


def next_trial(tmp_path: Path):
    """The spec of trial 1 of a run whose trial 0 is ``AS_PUSHED``: its folder and source not yet made."""
    spec = trial_spec(tmp_path, "ahead", AS_PUSHED)
    folder = spec.trial_dir.parent / "1"
    return dataclasses.replace(spec, trial=1, trial_dir=folder, source_file=folder / "source.py")


def keepers_of(folder: Path) -> list[int]:
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        inside = any(
            arg == str(folder.resolve()) or arg.startswith(f"{folder.resolve()}/") for arg in cmdline
        )
        if str(KEEPER) in cmdline and inside:
            found.append(proc.info["pid"])
    return found


def wait_until(predicate, seconds: float = 90.0) -> None:
    deadline = time.time() + seconds
    while not predicate():
        assert time.time() < deadline, "timed out"
        time.sleep(0.1)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def loaded(spec) -> bool:
    log = spec.trial_dir / "log.txt"
    return log.exists() and "started ahead: numpy, sklearn.linear_model, sklearn.datasets" in log.read_text()


def test_a_trial_started_ahead_loads_its_libraries_then_runs_the_source_it_is_given(tmp_path):
    runtime = LocalRuntime(tmp_path / "ws")
    spec = next_trial(tmp_path)
    runtime.prestart(spec)
    wait_until(lambda: loaded(spec))
    [keeper] = keepers_of(spec.trial_dir)
    assert not (spec.trial_dir / "work").exists() and not (spec.trial_dir / "outcome.json").exists()

    spec.source_file.write_text(textwrap.dedent(VARIANT))  # what the tuner proposes once trial 0 ended
    handle = runtime.run(spec)
    assert handle.pid == keeper  # given to the process started ahead, not started again
    outcome = runtime.wait(handle)
    runtime.remove(handle)

    assert outcome.ok, (spec.trial_dir / "log.txt").read_text()
    log = (spec.trial_dir / "log.txt").read_text()
    assert "the variant 0.9" in log and "as pushed" not in log
    assert log.index("started ahead") < log.index("running ahead.py")
    assert json.loads((spec.trial_dir / "metrics.json").read_text())["value"] > 0.9


def test_a_changed_spec_a_run_over_or_a_dead_orchestrator_ends_the_process_started_ahead(tmp_path):
    runtime = LocalRuntime(tmp_path / "ws")
    spec = next_trial(tmp_path)
    runtime.prestart(spec)
    [ahead] = keepers_of(spec.trial_dir)

    # The environment changed between the start ahead and the trial (a legacy fallback, another seed).
    spec.source_file.write_text(textwrap.dedent(VARIANT))
    changed = dataclasses.replace(spec, env={**spec.env, "MLOPS_SEED": "7"})
    handle = runtime.run(changed)
    assert handle.pid != ahead and gone(ahead)
    assert runtime.wait(handle).ok
    runtime.remove(handle)

    # The run stopped before trial 2: its process ends, and the folder made for it goes.
    later = dataclasses.replace(spec, trial=2, trial_dir=spec.trial_dir.parent / "2")
    later = dataclasses.replace(later, source_file=later.trial_dir / "source.py")
    runtime.prestart(later)
    [waiting] = keepers_of(later.trial_dir)
    runtime.prestart(None)
    assert gone(waiting) and not later.trial_dir.exists()

    # An orchestrator killed with trial 3 waiting: its keeper ends it, no process waits for nothing.
    orchestrator = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import dataclasses, sys, time
                from pathlib import Path
                from mlops.runtime.local import LocalRuntime
                from tests.test_ahead import next_trial
                spec = next_trial(Path({str(tmp_path / "o")!r}))
                LocalRuntime(Path({str(tmp_path / "o" / "ws")!r})).prestart(spec)
                print(spec.trial_dir, flush=True)
                time.sleep(600)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    folder = Path(orchestrator.stdout.readline().strip())
    [orphan] = keepers_of(folder)
    orchestrator.send_signal(signal.SIGKILL)
    orchestrator.wait()
    wait_until(lambda: gone(orphan), 10)
    assert "the orchestrator went away before this trial was given" in (folder / "log.txt").read_text()


def test_the_source_record_is_put_back_when_the_training_rewrites_it(tmp_path):
    runtime = LocalRuntime(tmp_path / "ws")
    spec = next_trial(tmp_path)
    runtime.prestart(spec)
    # The trial folder is the training's to write in: a file renamed over the record replaces it there.
    given = (
        textwrap.dedent(VARIANT)
        + 'open("../x", "w").write("print(1.0)"); os.replace("../x", "../source.py")\n'
    )
    given = "import os\n" + given
    spec.source_file.write_text(given)
    handle = runtime.run(spec)
    assert runtime.wait(handle).ok
    runtime.remove(handle)
    assert spec.source_file.read_text() == given
    assert "the training changed source.py; it is put back" in (spec.trial_dir / "log.txt").read_text()


def test_a_harness_never_given_its_trial_ends_by_itself_having_written_nothing(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text(textwrap.dedent(AS_PUSHED))
    out = tmp_path / "trial"
    done = subprocess.run(
        [sys.executable, str(HARNESS), "--code", str(code), "--script", "train.py"]
        + ["--source", str(out / "source.py"), "--out", str(out)]
        + ["--wait-for", str(out / ".go"), "--wait-s", "0.5"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "started ahead" in done.stdout
    assert sorted(p.name for p in out.iterdir()) == ["checkpoints"]  # no work, no outcome, no events


def test_mlops_run_starts_each_next_trial_ahead_and_leaves_none_behind(tmp_path):
    script = Path(__file__).resolve().parent.parent / "bench" / "weak_models" / "dense_3_units.py"
    repo = make_repo(tmp_path / "repo", {"dense.py": script.read_text()})
    done = run_cli(
        "run", str(repo), "--runtime", "local", "--max-trials", "3", "--workspace", "ws", cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    history = json.loads(
        run_cli("history", "--json", "--workspace", "ws", cwd=tmp_path).stdout.splitlines()[0]
    )
    trials = Path(history["dir"]) / "trials"
    assert history["status"] == "reached" and history["best_trial"] == 1
    assert "started ahead: keras, sklearn.datasets" in (trials / "1" / "log.txt").read_text()
    assert sorted(p.name for p in trials.iterdir()) == ["0", "1"]  # trial 2's process ended, its folder gone
    assert not keepers_of(tmp_path / "ws")
    assert "started ahead" not in (trials / "0" / "log.txt").read_text()
    assert os.path.exists(trials / "1" / ".go")
