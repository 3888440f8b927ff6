"""Attacks through ``data:``: a folder mapped read-only stays as it was whatever the script does, and a
pushed mlops.yaml that maps anything but the repository and the folders the machine's owner allows
(``data_roots``), or any workspace, the engine's state or the system, is refused before anything runs."""

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
    done = run_pushed(repo, tmp_path / "ws", runtime, env={"MLOPS_DATA_ROOTS": str(data)})
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


# -- what a push may map: the repository, and only the roots the machine's owner allows ------------------

READ = """
import os
print("read:", open({path!r}).read().strip())
"""


def test_a_push_maps_no_folder_of_the_machine_unless_its_owner_allows_it(tmp_path: Path) -> None:
    """Before: any absolute folder but the run's own workspace and a short deny-list was mapped."""
    data = tmp_path / "team-data"
    data.mkdir()
    (data / "rows.csv").write_text("a,b\n")
    config = f"entry_points: [attack.py]\ndata:\n  /root/train_set: {data}\n"
    repo = pushed(tmp_path, "reacher", READ.format(path="/root/train_set/rows.csv"), {"mlops.yaml": config})
    refused = run_pushed(repo, tmp_path / "ws", "local")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "mlops.yaml: data: /root/train_set:" in refused.stderr and "data_roots: none" in refused.stderr
    assert runs(tmp_path / "ws") == []
    allowed = run_pushed(repo, tmp_path / "ws", "local", "-v", env={"MLOPS_DATA_ROOTS": str(data)})
    assert allowed.returncode == 0, allowed.stderr
    assert "read: a,b" in allowed.stdout


def other_workspace(root: Path) -> Path:
    """A real mlops workspace: its ledger, and a run folder with the best source of someone else's run."""
    from mlops.ledger import Ledger

    Ledger(root / "ledger.db")
    (root / "runs" / "1-secret").mkdir(parents=True)
    (root / "runs" / "1-secret" / "best.py").write_text("SECRET_MODEL = 1\n")
    return root


@pytest.mark.parametrize(
    "what",
    ["workspace", "run-folder", "holds-a-workspace", pytest.param("engine-state", marks=pytest.mark.docker)],
)
def test_no_workspace_and_no_engine_state_is_mapped_even_under_an_allowed_root(
    tmp_path: Path, what: str
) -> None:
    """Before: another workspace (its ledger.db, other runs' best.py) or /var/lib/docker could be mapped."""
    shared = tmp_path / "shared"
    other = other_workspace(shared / "team" / "ws")
    source, root = {
        "workspace": (other, shared),
        "run-folder": (other / "runs" / "1-secret", shared),
        "holds-a-workspace": (shared, shared),
        "engine-state": (Path("/var/lib/docker"), Path("/var/lib")),
    }[what]
    if not source.exists():
        source.mkdir(
            parents=True
        )  # no engine on this machine: its folder stands in, as an owner could make it
    config = f"entry_points: [attack.py]\ndata:\n  /root/train_set: {source}\n"
    repo = pushed(tmp_path, "greedy", "print('hi')\n", {"mlops.yaml": config})
    done = run_pushed(repo, tmp_path / "ws", "local", env={"MLOPS_DATA_ROOTS": str(root)})
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    assert "mlops.yaml: data: /root/train_set:" in done.stderr and "would expose" in done.stderr, done.stderr
    assert runs(tmp_path / "ws") == []


def test_the_sites_own_data_is_the_owners_and_needs_no_root(tmp_path: Path) -> None:
    data = tmp_path / "site-data"
    data.mkdir()
    (data / "rows.csv").write_text("c,d\n")
    repo = pushed(tmp_path, "reader", READ.format(path="/root/train_set/rows.csv"))
    done = run_pushed(
        repo, tmp_path / "ws", "local", "-v", env={"MLOPS_DATA": f"{{/root/train_set: {data}}}"}
    )
    assert done.returncode == 0, done.stderr
    assert "read: c,d" in done.stdout
