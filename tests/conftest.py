"""Shared fixtures: real git repositories in tmp folders, a workspace, and the CLI run as a process."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.repos import make_repo
from tests.support.tiers import in_full


def pytest_collection_modifyitems(items):
    """`make test` runs the tests on two workers (pytest-xdist, --dist loadgroup): every test that uses the
    Ray cluster goes to one worker, so one cluster is started, not one per worker. The tests tests/support/tiers.py
    leaves to `make test-full` are marked ``full``."""
    for item in items:
        if in_full(item.nodeid):
            item.add_marker(pytest.mark.full)
        if "ray_cluster" in getattr(item, "fixturenames", ()) or "[ray" in item.nodeid:
            item.add_marker(pytest.mark.xdist_group("ray"))


@pytest.fixture
def repo_factory(tmp_path):
    counter = iter(range(1000))

    def factory(files: dict[str, str], name: str | None = None) -> Path:
        return make_repo(tmp_path / (name or f"repo{next(counter)}"), files)

    return factory


@pytest.fixture(scope="session")
def docker_images(tmp_path_factory):
    """The training images on a real engine. `make test` starts the engine; without one this fails loudly."""
    from mlops.runtime.docker import DockerRuntime, engine_available

    if not engine_available():
        pytest.fail("no Docker engine answers: `make test` starts one (scripts/docker-setup.sh)")
    runtime = DockerRuntime.from_env(tmp_path_factory.mktemp("images"))
    volumes_before = {v.name for v in runtime.client.volumes.list()}
    names = ("mlops-sklearn", "mlops-keras3", "mlops-keras2", "mlops-pytorch")
    yield {name: runtime.build(name, say=lambda _: None)[0] for name in names}
    # The tests' containers are removed by each test; the volumes they made (the dataset cache when
    # this engine had none) go at the end of the session.
    import docker.errors

    for volume in runtime.client.volumes.list():
        if volume.name not in volumes_before and volume.name.startswith("mlops-"):
            try:
                volume.remove(force=True)
            except docker.errors.NotFound:  # the other worker's session removed it first
                pass
            except docker.errors.APIError as e:  # in use by a test of the other worker: it stays
                if e.status_code != 409:
                    raise


@pytest.fixture
def docker_runtime(docker_images):
    """Docker runtimes for a workspace; every container they made is removed afterwards."""
    from mlops.runtime.docker import DockerRuntime

    made = []

    def make(workspace: Path) -> DockerRuntime:
        runtime = DockerRuntime.from_env(workspace)
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        runtime.cleanup(keep=set())


@pytest.fixture(scope="session")
def ray_cluster():
    """A real Ray cluster of two nodes on this machine (head node_a, worker node_b), stopped at the end."""
    from tests.support.ray_cluster import start_cluster

    cluster = start_cluster(workers=2)
    yield cluster
    cluster.stop()
