"""A derived environment always keeps its base's packages (issue 23): on each base, current and legacy
generation, local and Docker, a script that needs one package the base lacks (seaborn) still imports the
base's framework. Before the fix, the local runtime's sandbox did not show a venv over the legacy base
its base, and such a script failed at its first line with `No module named 'numpy'` (or 'keras')."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.attacks import pushed, run_pushed, runs, trial_of, work_file

pytestmark = pytest.mark.slow

SCRIPT = """
import seaborn  # in no base: the run's environment is derived from the base
import keras
open("framework.txt", "w").write(keras.__version__)
"""
# seaborn is in no base; keras<3 chooses the legacy generation (TensorFlow 2.15 with Keras 2)
REQUIREMENTS = {"current": "seaborn\n", "legacy": "keras<3\nseaborn\n"}


@pytest.fixture(scope="module")
def workspaces(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {name: tmp_path_factory.mktemp(f"ws-{name}") for name in ("local", "docker")}


@pytest.mark.parametrize("runtime", ["local", pytest.param("docker", marks=pytest.mark.docker)])
@pytest.mark.parametrize(("generation", "version"), [("current", "3."), ("legacy", "2.15")])
def test_a_derived_environment_imports_its_base_s_framework(
    tmp_path, workspaces, runtime, generation, version, request
):
    if runtime == "docker":
        request.getfixturevalue("docker_images")
    workspace = workspaces[runtime]
    files = {"requirements.txt": REQUIREMENTS[generation]}
    repo = pushed(tmp_path, f"derived-{generation}", SCRIPT, files)
    done = run_pushed(repo, workspace, runtime, "--new-run")
    run = [r for r in runs(workspace) if r["source"] == str(repo)][-1]
    trial = trial_of(workspace, run)
    assert trial["status"] == "succeeded", (done.stdout, done.stderr)
    assert "seaborn==" in done.stdout and f"the {generation} generation" in done.stdout, done.stdout
    assert (work_file(workspace, run, "framework.txt") or "").startswith(version), done.stdout
