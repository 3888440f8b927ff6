"""A PyTorch trial started ahead (local runtime): torch loads while the trial before it trains, and the
trial then runs with it. A started-ahead harness whose library failed to load (torch failed inside itself
with 'Artifact of type=precompile already registered' when a half-made import was imported again) runs its
trial in a fresh process instead."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import textwrap
import time

import pytest

from mlops.runtime.local import LocalRuntime
from tests.support.processes import HARNESS
from tests.support.torch_scripts import PLAIN_CNN, script, torch_python
from tests.support.trials import trial_spec

# A library that fails to load in a process started ahead (its arguments say --wait-for), and only there.
FLAKY = """
import sys
if "--wait-for" in sys.argv:
    raise RuntimeError("half made")
"""
USES_IT = """
import seaborn
open("accuracy.txt", "w").write("0.91")
"""


def test_a_library_that_fails_to_load_ahead_is_loaded_afresh_when_the_trial_comes(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "seaborn.py").write_text(FLAKY)  # seaborn is one of the libraries loaded ahead
    code, out = tmp_path / "code", tmp_path / "trial"
    code.mkdir()
    (code / "train.py").write_text(textwrap.dedent(USES_IT))
    go = out / ".go"
    process = subprocess.Popen(
        [sys.executable, str(HARNESS), "--code", str(code), "--script", "train.py", "--source", str(code / "train.py"),
         "--out", str(out), "--wait-for", str(go), "--wait-s", "120"],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path / "lib")},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.time() + 60
    while not out.exists() and time.time() < deadline:
        time.sleep(0.05)
    go.write_bytes(b"")
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0, output
    assert (
        "started ahead, but seaborn: RuntimeError: half made; the trial starts in a fresh process" in output
    )
    assert output.count("running train.py") == 1  # once, in the fresh process
    assert json.loads((out / "metrics.json").read_text())["value"] == 0.91


@pytest.mark.slow
def test_a_pytorch_trial_started_ahead_runs_with_torch_already_loaded(tmp_path, tmp_path_factory):
    python = torch_python(tmp_path_factory.mktemp("torch-env"))
    spec = trial_spec(tmp_path, "ahead", script(PLAIN_CNN, 2), timeout_s=1200)
    folder = spec.trial_dir.parent / "1"
    spec = dataclasses.replace(
        spec, trial=1, trial_dir=folder, source_file=folder / "source.py", python=python
    )
    runtime = LocalRuntime(tmp_path / "ws")
    runtime.prestart(spec)
    log = folder / "log.txt"
    deadline = time.time() + 600
    while not (log.exists() and re.search(r"started ahead: .*\btorch\b.* loaded in", log.read_text())):
        assert time.time() < deadline, log.read_text() if log.exists() else "no log"
        time.sleep(0.1)
    spec.source_file.write_text(script(PLAIN_CNN, 2))
    handle = runtime.run(spec)
    outcome = runtime.wait(handle)
    runtime.remove(handle)
    text = log.read_text()
    assert outcome.ok, text[-3000:]
    assert "fresh process" not in text and text.index("started ahead:") < text.index("running ahead.py")
    assert json.loads((folder / "metrics.json").read_text())["source"].startswith("printed at ahead.py:")
