"""The PyTorch corpus of tests/fixtures/torch_repos/ (issue 25), end to end on both runtimes: each
repository as pushed gives the metric its manifest expects, read where the manifest says, in the PyTorch
generation; the weak ones, tuned by tpe towards 0.80, reach it in at most 3 trials."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.corpus import train_as_pushed
from tests.support.repos import ROOT
from tests.support.tiers import TORCH_CORPUS_IN_MAKE_TEST, runtime_matrix

TORCH_CORPUS = ROOT / "tests" / "fixtures" / "torch_repos"
CASES: dict[str, dict[str, Any]] = json.loads((TORCH_CORPUS / "manifest.json").read_text())["repos"]
TARGET = 0.80

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workspaces(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    # One workspace per runtime, as one mlops serves many pushes: the Lightning venv is built once.
    return {name: tmp_path_factory.mktemp(f"torch-ws-{name}") for name in ("local", "docker")}


@pytest.mark.parametrize(
    ("name", "runtime"), runtime_matrix(CASES, TORCH_CORPUS_IN_MAKE_TEST, id_first="runtime")
)
def test_each_pytorch_repository(
    name: str, runtime: str, workspaces: dict[str, Path], tmp_path: Path, request
):
    if runtime == "docker":
        request.getfixturevalue("docker_images")
    expected = CASES[name]
    flags: dict[str, Any] = {"target": TARGET, "max_trials": 3} if expected.get("weak") else {}
    got = train_as_pushed(name, tmp_path, workspaces[runtime], runtime, corpus=TORCH_CORPUS, **flags)
    assert got.generation == "pytorch", got.log
    if expected["expect"] != "metric":
        assert got.metric is None and got.failure == expected["expect"], got.log
        return
    # Trial 0 is the script as pushed: its own metric, from where the manifest says it is.
    assert got.metric is not None, f"{got.failure}: {got.reason}\n{got.log}"
    assert expected["at_least"] <= got.metric <= expected.get("at_most", 1.0), got.log
    if "source" in expected:
        assert (got.source or "").startswith(expected["source"]), got.source
    for package in expected.get("installs", []):
        assert any(line.startswith(f"{package}==") for line in got.installed), got.installed
    for written in expected.get("outside", []):
        assert got.run_dir is not None and (got.run_dir / "trials" / "0" / "outside" / written).is_file(), (
            got.log
        )
    if expected.get("weak"):
        assert len(got.metrics) <= 3, got.log
        assert got.best_metric is not None and got.best_metric >= TARGET, (got.metrics, got.log)
