"""Environments built for real with uv over this interpreter: what is installed, reuse, and bad input
(a package that does not exist, a version conflict, an import no distribution provides, too many
requirements, a build killed half-way, two runs building the same environment at once)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlops.envs.store import MANIFEST, Store
from mlops.errors import SourceError
from tests.support.envs import RESOLVE_SCRIPT, resolve_local, write_files
from tests.support.repos import ROOT

SEABORN = {"train.py": "import seaborn\nimport sklearn\nprint(seaborn.__version__)\n"}


def run_python(python: str, code: str) -> str:
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return done.stdout.strip()


def test_an_import_the_base_lacks_is_installed_and_the_base_is_seen_not_copied(tmp_path: Path) -> None:
    code = write_files(tmp_path / "code", SEABORN)
    env = resolve_local(code, tmp_path / "envs")
    assert env.installed == ("seaborn==0.13.2 (train.py:1: import seaborn)",)
    assert env.built_s is not None and env.python.startswith(str(tmp_path / "envs"))
    where = run_python(
        env.python, "import seaborn, sklearn; print(seaborn.__file__); print(sklearn.__file__)"
    )
    seaborn_at, sklearn_at = where.splitlines()
    assert seaborn_at.startswith(str(tmp_path / "envs")) and not sklearn_at.startswith(str(tmp_path))
    manifest = Store(tmp_path / "envs").folder(env.key) / MANIFEST
    built = (manifest.parent.stat().st_ino, manifest.stat().st_mtime_ns, manifest.read_text())
    again = resolve_local(code, tmp_path / "envs")
    assert again.key == env.key and again.built_s is None  # found built: how fast is bench/'s to say
    assert (manifest.parent.stat().st_ino, manifest.stat().st_mtime_ns, manifest.read_text()) == built


def test_no_install_runs_on_the_base_and_says_what_it_did_not_install(tmp_path: Path) -> None:
    code = write_files(tmp_path / "code", SEABORN)
    env = resolve_local(code, tmp_path / "envs", install=False)
    assert env.python == sys.executable and env.key == ""
    assert env.notes[-1].startswith(
        "install is off (--no-install or mlops.yaml install: false): not installed: seaborn"
    )


def test_a_pin_the_base_does_not_satisfy_keeps_the_base_s_version(tmp_path: Path) -> None:
    code = write_files(tmp_path / "code", {**SEABORN, "requirements.txt": "numpy==1.19.5\n"})
    env = resolve_local(code, tmp_path / "envs")
    assert env.key == "" and env.python == sys.executable
    assert "requirements.txt:1: numpy==1.19.5 not installed; the base's numpy" in env.notes[-1]


def test_a_package_that_does_not_exist_is_one_error_naming_its_line(tmp_path: Path) -> None:
    code = write_files(
        tmp_path / "code", {**SEABORN, "requirements.txt": "seaborn\nmlops-no-such-package-xyzzy==1.0\n"}
    )
    with pytest.raises(SourceError) as e:
        resolve_local(code, tmp_path / "envs")
    message = str(e.value)
    assert (
        "mlops-no-such-package-xyzzy" in message
        and "requirements.txt:2: mlops-no-such-package-xyzzy==1.0" in message
    )
    assert "\n" not in message


def test_a_version_conflict_with_the_base_names_both_sides(tmp_path: Path) -> None:
    code = write_files(tmp_path / "code", {**SEABORN, "requirements.txt": "numba==0.58.1\n"})
    with pytest.raises(SourceError) as e:
        resolve_local(code, tmp_path / "envs")
    message = str(e.value)
    assert "numpy" in message and "asked by requirements.txt:1: numba==0.58.1" in message


def test_an_import_no_known_distribution_provides_is_not_installed_and_names_the_import_line(
    tmp_path: Path,
) -> None:
    # Before: the index's package of that name was installed (`kera` for a typo of keras). Now nothing is.
    code = write_files(tmp_path / "code", {"train.py": "import os\nfrom kera.models import Sequential\n"})
    env = resolve_local(code, tmp_path / "envs")
    assert env.key == "" and env.installed == () and env.python == sys.executable
    assert env.notes[-1].startswith(
        "train.py:2: from kera.models import Sequential: no known distribution provides 'kera' "
        "(did you mean 'keras'?); not installed"
    )
    assert not (tmp_path / "envs").exists() or not any((tmp_path / "envs").glob("*/requirements.in"))


def test_hundreds_of_requirements_are_refused_before_anything_is_fetched(tmp_path: Path) -> None:
    lines = "".join(f"mlops-fake-package-{i:03d}==1.0\n" for i in range(300))
    code = write_files(tmp_path / "code", {**SEABORN, "requirements.txt": lines})
    with pytest.raises(SourceError) as e:
        resolve_local(code, tmp_path / "envs")
    assert str(e.value).startswith(
        "requirements.txt ask for 300 packages that the base does not have; at most 100 are installed for a run"
    )
    assert not (tmp_path / "envs").exists() or not any((tmp_path / "envs").glob("*/requirements.in"))


def resolver(code: Path, store: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-c", RESOLVE_SCRIPT, str(code), str(store)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_build_killed_half_way_is_never_used_and_is_built_again(tmp_path: Path) -> None:
    code = write_files(tmp_path / "code", {"train.py": "import seaborn\nimport emoji\n"})
    store = tmp_path / "envs"
    process = resolver(code, store)
    deadline = time.time() + 60
    started = []
    while time.time() < deadline and not started:
        started = [p.parent for p in store.glob("*/requirements.in")]
        time.sleep(0.01)
    assert started, "the build never started"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    folder = started[0]
    assert not (folder / MANIFEST).exists()  # half a build, no manifest: never used
    env = resolve_local(code, store)
    assert env.built_s is not None and env.key == folder.name
    assert run_python(env.python, "import seaborn, emoji; print('ok')") == "ok"


def test_two_runs_that_need_the_same_environment_build_it_once(tmp_path: Path) -> None:
    code = write_files(tmp_path / "code", {"train.py": "import seaborn\nimport tabulate\n"})
    store = tmp_path / "envs"
    processes = [resolver(code, store) for _ in range(2)]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert results[0]["key"] == results[1]["key"] and results[0]["python"] == results[1]["python"]
    assert sorted(r["built_s"] is None for r in results) == [False, True]  # one built it, the other waited
