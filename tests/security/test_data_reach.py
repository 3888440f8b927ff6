"""Attacks through ``data:``: a folder mapped read-only stays as it was whatever the script does, and a
pushed mlops.yaml that maps the workspace or the system is refused before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.attacks import pushed, run_pushed, runs

pytestmark = pytest.mark.slow

TAMPER = """
import os, shutil
for step in (lambda: open("/root/train_set/planted.txt", "w").write("x"),
             lambda: os.remove("/root/train_set/data.csv"),
             lambda: os.chmod("/root/train_set/data.csv", 0o777),
             lambda: shutil.rmtree("/root/train_set")):
    try:
        step()
    except OSError as e:
        print("refused:", e)
print(open("/root/train_set/data.csv").read())
"""


@pytest.fixture(params=["local", pytest.param("docker", marks=pytest.mark.docker)])
def runtime(request):
    if request.param == "docker":
        request.getfixturevalue("docker_images")
    return request.param


def test_a_read_only_folder_cannot_be_changed(tmp_path: Path, runtime: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o777)  # only the mount stops a write (the trial may run as another user)
    (data / "data.csv").write_text("a,b\n1,2\n")
    (data / "data.csv").chmod(0o666)
    config = f"entry_points: [attack.py]\ndata:\n  /root/train_set: {data}\n"
    repo = pushed(tmp_path, "tamper", TAMPER, {"mlops.yaml": config})
    done = run_pushed(repo, tmp_path / "ws", runtime)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in data.iterdir()) == ["data.csv"]
    assert (data / "data.csv").read_text() == "a,b\n1,2\n"
    assert (data / "data.csv").stat().st_mode & 0o777 == 0o666


@pytest.mark.parametrize("what", ["ledger.db", ".", "/etc", "/"])
def test_a_mapping_of_the_workspace_or_the_system_is_refused(tmp_path: Path, what: str) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "ledger.db").write_bytes(b"")
    source = what if what.startswith("/") else workspace / what
    config = f"entry_points: [attack.py]\ndata:\n  /root/train_set: {source}\n"
    repo = pushed(tmp_path, "greedy", "print('hi')\n", {"mlops.yaml": config})
    done = run_pushed(repo, workspace, "local")
    assert done.returncode != 0
    assert "mlops.yaml: data: /root/train_set:" in done.stderr and "would expose" in done.stderr, done.stderr
    assert runs(workspace) == []
