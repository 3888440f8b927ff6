"""Attacks on what mlops reads back from a trial's folder: links and hard links planted in place of the
trial's inputs and outputs, a model event that names a host file, records of the wrong type. Each case is
a pushed script run by `mlops run` on every runtime that applies (the local sandbox, the local runtime
without its sandbox, Docker), and a check that nothing of the host reached the results, the model store or
the person, and that mlops itself did not fail over it."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.attacks import files_holding, pushed, run_pushed, runs, trial_of, work_file
from tests.support.processes import run_cli
from tests.support.repos import ROOT

pytestmark = pytest.mark.slow

MARKER = "host-secret-5c0ffee"


@pytest.fixture(params=["local", "unsandboxed", pytest.param("docker", marks=pytest.mark.docker)])
def runtime(request) -> tuple[str, ...]:
    """`mlops run`'s runtime and flags: the sandbox, plain processes (nothing stops the trial from planting
    links there: only the reader does), a container."""
    if request.param == "docker":
        request.getfixturevalue("docker_images")
        return ("docker",)
    return ("local", "--unsandboxed") if request.param == "unsandboxed" else ("local",)


def host_secret(tmp_path: Path) -> Path:
    secret = tmp_path / "host" / "secret.pkl"
    secret.parent.mkdir()
    secret.write_text(f"{MARKER}\nroot:$6$salt$hash:19000:0:99999:7:::\n")
    return secret


def assert_nothing_leaked(workspace: Path, done: subprocess.CompletedProcess[str]) -> None:
    """Nothing of the host file in what mlops wrote or said. (The trial's own folder is left out: without the
    sandbox the trial itself can read the host file and put it there; mlops never takes it from there.)"""
    assert MARKER not in done.stdout + done.stderr
    leaked = [p for p in files_holding(workspace, MARKER) if "trials" not in p.relative_to(workspace).parts]
    assert leaked == []
    assert "Traceback" not in done.stderr, done.stderr


def run_attack(
    tmp_path: Path, runtime: tuple[str, ...], name: str, script: str, workspace: Path | None = None
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    workspace = workspace or tmp_path / "ws"
    done = run_pushed(pushed(tmp_path, name, script), workspace, *runtime)
    return workspace, done


# -- the trial's inputs swapped for links ---------------------------------------------------------------

LINK_INPUTS = """
import os
here = os.path.dirname(os.getcwd())  # the trial folder (/trial in a container)
said = []
for name in ("source.py", "params.json", "inputs.json"):
    path = os.path.join(here, name)
    try:
        if os.path.lexists(path):
            os.replace(path, path + ".old")
        os.symlink({host!r}, path)
        said.append("linked " + name)
    except OSError as e:
        said.append(f"refused {{name}}: {{e}}")
open("found.txt", "w").write("\\n".join(said))
print("\\n".join(said))
"""


def test_inputs_swapped_for_links_never_reach_the_results(tmp_path, runtime):
    """Before: on Docker (and without the sandbox) best.py, best.diff and report.html held the host file."""
    secret = host_secret(tmp_path)
    workspace, done = run_attack(tmp_path, runtime, "swapper", LINK_INPUTS.format(host=str(secret)))
    assert_nothing_leaked(workspace, done)
    (run,) = runs(workspace)
    assert run["report"] is not None and Path(run["report"]).exists()
    assert (Path(run["dir"]) / "junit.xml").exists()
    found = work_file(workspace, run, "found.txt")
    assert found is not None  # the script did run
    if "linked" in found:  # whatever it managed to link made its trial fail, named, never followed
        trial = trial_of(workspace, run)
        assert trial["status"] == "failed" and trial["failure_class"] == "code", trial
        assert "link" in trial["error"], trial


WRITE_INPUTS = """
import os
here = os.path.dirname(os.getcwd())
said = []
for name in ("source.py", "params.json"):
    try:
        with open(os.path.join(here, name), "a") as fh:
            fh.write("\\n# " + "tamp" + "ered\\n")
        said.append("changed " + name)
    except OSError as e:
        said.append(f"refused {{name}}: {{e.strerror}}")
open("found.txt", "w").write("\\n".join(said))
"""


def test_the_trials_inputs_are_read_only_in_the_sandbox_and_the_container(tmp_path, runtime):
    """Before: a container could write its source.py and params.json, and the sandbox its params.json."""
    if "--unsandboxed" in runtime:
        pytest.skip("without the sandbox nothing is read-only: the reader alone refuses what it plants")
    workspace, done = run_attack(tmp_path, runtime, "writer", WRITE_INPUTS.format())
    assert done.returncode == 0, done.stderr
    (run,) = runs(workspace)
    found = work_file(workspace, run, "found.txt")
    assert found is not None and found.count("refused") == 2, found
    folder = Path(run["dir"]) / "trials" / "0"
    assert "tampered" not in (folder / "source.py").read_text()
    assert "tampered" not in (folder / "params.json").read_text()


# -- the model: a host path, a link, a hard link, a record of the wrong type ------------------------------

PLANT_MODEL = """
import json, os, time
here = os.path.dirname(os.getcwd())
os.makedirs(os.path.join(here, "model"), exist_ok=True)
planted = os.path.join(here, "model", "model.pkl")
name = {target!r}
if {how!r} == "symlink":
    os.symlink({target!r}, planted)
    name = "model/model.pkl"
elif {how!r} == "hardlink":
    try:
        os.link({target!r}, planted)
    except OSError as e:
        print("cannot link:", e)
    name = "model/model.pkl"
event = {{"event": "model", "at": time.time(), "saved": True, "file": name, "format": "pickle",
          "framework": "sklearn", "class": "LogisticRegression", "origin": ["score", 3], "input": None,
          "versions": {{"python": "3.11"}}, "size_bytes": {size}, "sha256": {sha!r}, "reload_error": None}}
with open(os.path.join(here, "events.jsonl"), "a") as fh:
    fh.write(json.dumps(event) + "\\n")
with open(os.path.join(here, "metrics.json"), "w") as fh:
    json.dump({{"metric": "accuracy", "value": 0.9, "source": "file:accuracy.txt", "history": [], "epochs": 0}}, fh)
os._exit(0)  # before the harness writes its own model event: this one is the last
"""


def plant_model(secret: Path, how: str, target: str | None = None) -> str:
    data = secret.read_bytes()
    return PLANT_MODEL.format(
        target=target or str(secret), how=how, size=len(data), sha=hashlib.sha256(data).hexdigest()
    )


def copied_out(workspace: Path, run: dict, to: Path) -> subprocess.CompletedProcess[str]:
    return run_cli("model", run["run"], "--to", str(to), "--workspace", str(workspace), cwd=workspace.parent)


@pytest.mark.parametrize("how", ["path", "symlink", "hardlink"])
def test_a_model_event_never_publishes_a_host_file(tmp_path, runtime, how):
    """Before: `runs/<run>/model/model.pkl` became a hard link to the host file the event named (with its
    real sha256), and `mlops model RUN --to DIR` copied it out."""
    secret = host_secret(tmp_path)
    workspace, done = run_attack(tmp_path, runtime, "planter", plant_model(secret, how))
    assert_nothing_leaked(workspace, done)
    (run,) = runs(workspace)
    assert run["model"] is None
    assert not list((Path(run["dir"]) / "model").glob("*.pkl"))
    out = tmp_path / "out"
    copied = copied_out(workspace, run, out)
    assert copied.returncode != 0 and "Traceback" not in copied.stderr, copied.stderr
    assert not out.exists() or files_holding(out, MARKER) == []
    model_dir = Path(run["dir"]) / "model"  # nothing mlops made is the host file under another name
    assert all(p.stat().st_ino != secret.stat().st_ino for p in model_dir.glob("*") if model_dir.exists())
    assert Path(run["report"]).exists() and (Path(run["dir"]) / "junit.xml").exists()


def test_a_rejected_model_says_the_same_whether_the_host_file_exists_or_not(tmp_path, runtime):
    """Before: 'the model file ... is gone' for a path that does not exist, 'its sha256 differs' for one
    that does: the trial learnt which host files exist."""
    secret = host_secret(tmp_path)
    said = []
    for target in (str(secret), str(secret.with_name("no-such-file.pkl"))):
        script = plant_model(secret, "path", target)
        workspace, done = run_attack(
            tmp_path, runtime, f"prober-{len(said)}", script, tmp_path / f"ws-{len(said)}"
        )
        assert "Traceback" not in done.stderr, done.stderr
        (run,) = runs(workspace)
        trial = trial_of(workspace, run)
        shown = run_cli("show", run["run"], "--json", "--workspace", str(workspace), cwd=tmp_path)
        card = json.loads(shown.stdout)["model_card"] or {}
        text = json.dumps([trial["status"], trial["error"], trial["hint"], card.get("error")])
        said.append(text.replace(target, "<path>").replace(run["run"], "<run>"))
    assert said[0] == said[1], said


BAD_MODEL_EVENT = """
import hashlib, json, os, time
here = os.path.dirname(os.getcwd())
os.makedirs(os.path.join(here, "model"), exist_ok=True)
data = b"not really a pickle"
open(os.path.join(here, "model", "model.pkl"), "wb").write(data)
event = {"event": "model", "at": time.time(), "saved": True, "file": "model/model.pkl", "format": "pickle",
         "framework": "sklearn", "class": "LogisticRegression", "origin": ["score", 3], "input": None,
         "versions": ["sklearn", "1.0"], "size_bytes": "very big", "sha256": hashlib.sha256(data).hexdigest(),
         "reload_error": None}
with open(os.path.join(here, "events.jsonl"), "a") as fh:
    fh.write(json.dumps(event) + "\\n")
with open(os.path.join(here, "metrics.json"), "w") as fh:
    json.dump({"metric": "accuracy", "value": 0.9, "source": "file:accuracy.txt", "history": [], "epochs": 0}, fh)
os._exit(0)
"""

BAD_METRICS = """
import json, os
here = os.path.dirname(os.getcwd())
with open(os.path.join(here, "metrics.json"), "w") as fh:
    json.dump({"metric": "<b>accuracy</b>", "value": 0.9, "source": "file", "epochs": "ten",
               "history": [{"fit": 0, "epoch": "one", "accuracy": "high"}],
               "kmeans": {"curve": {"k": "abc"}}}, fh)
with open(os.path.join(here, "outcome.json"), "w") as fh:
    json.dump({"status": "ok", "exit_code": "zero"}, fh)
os._exit(0)
"""


def job5(workspace: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobs.job5_notify", "--workspace", str(workspace), "--no-notify"],
        cwd=workspace.parent,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("script", [BAD_MODEL_EVENT, BAD_METRICS], ids=["model-event", "metrics"])
def test_a_record_of_the_wrong_type_fails_its_trial_never_job_5(tmp_path, runtime, script):
    """Before: a string for size_bytes and a list for versions crashed job 5 on every rerun, with no report
    and no JUnit file."""
    workspace, done = run_attack(tmp_path, runtime, "malformed", script)
    assert "Traceback" not in done.stderr, done.stderr
    (run,) = runs(workspace)
    trial = trial_of(workspace, run)
    assert trial["status"] == "failed" and trial["failure_class"] == "code", trial
    folder = Path(run["dir"])
    for name in ("report.html", "junit.xml"):
        (folder / name).unlink()
    again = job5(workspace)
    assert "Traceback" not in again.stderr, again.stderr
    assert (folder / "report.html").exists() and (folder / "junit.xml").exists(), again.stderr
    assert "<b>accuracy</b>" not in (folder / "report.html").read_text()
