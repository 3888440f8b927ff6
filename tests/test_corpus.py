"""The corpus of tests/fixtures/repos/, end to end on both runtimes: each repository trained as pushed
gives the metric or the failure class its manifest expects, in the library generation it expects."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.corpus import manifest, train_as_pushed
from tests.support.tiers import CORPUS_IN_MAKE_TEST, runtime_matrix

CASES = manifest()


@pytest.fixture(scope="module")
def workspaces(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    # One workspace per runtime for the whole corpus, as one mlops serves many pushes: environments
    # (the legacy one included) are built once and shared by every run that needs them.
    return {name: tmp_path_factory.mktemp(f"ws-{name}") for name in ("local", "docker")}


@pytest.mark.slow
@pytest.mark.parametrize(("name", "runtime"), runtime_matrix(CASES, CORPUS_IN_MAKE_TEST, id_first="name"))
def test_each_repository_as_pushed(
    name: str, runtime: str, workspaces: dict[str, Path], tmp_path: Path, request
):
    if runtime == "docker":
        request.getfixturevalue("docker_images")
    expected = CASES[name]
    got = train_as_pushed(name, tmp_path, workspaces[runtime], runtime, **expected.get("flags", {}))
    if expected["expect"] == "metric":
        assert got.metric is not None and got.metric >= expected["at_least"], got.log
        assert got.metric <= expected.get("at_most", 1.0), got.log  # as pushed, it barely learns
    else:
        assert got.metric is None and got.failure == expected["expect"], got.log
    if expected.get("before_trial_0"):
        assert got.trials == 0, got.log
    if "trials" in expected:
        assert got.trials == expected["trials"], got.log
    for text in [expected.get("hint"), expected.get("reason")]:
        if text:  # {workspace}: the one of this test, not the default, so the line names it
            assert text.replace("{workspace}", str(workspaces[runtime])) in got.reason, got.log
    if "generation" in expected:
        assert got.generation == expected["generation"], got.log
    for package in expected.get("installs", []):
        assert any(line.startswith(f"{package}==") for line in got.installed), got.log
    if "source" in expected:  # a metric the script never measured says so (cross_validated)
        assert got.source == expected["source"], got.log
    if "metric" in expected:
        assert got.metric_name == expected["metric"], got.log
    for written in expected.get("outside", []):  # the author's folders: in the trial's outside/
        assert got.run_dir is not None and (got.run_dir / "trials" / "0" / "outside" / written).is_file(), (
            got.log
        )
