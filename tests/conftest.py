"""Shared fixtures: real git repositories in tmp folders, a workspace, and the CLI run as a process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlops.ledger import Ledger
from mlops.runtime.base import Limits, TrialSpec

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT / "mlops_harness"  # run as a folder: python HARNESS ARGS


def git(repo: Path, *args: str) -> str:
    env = dict(
        os.environ,
        GIT_AUTHOR_NAME="Ada Scientist",
        GIT_AUTHOR_EMAIL="ada@example.com",
        GIT_COMMITTER_NAME="Ada Scientist",
        GIT_COMMITTER_EMAIL="ada@example.com",
    )
    done = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def make_repo(path: Path, files: dict[str, str], message: str = "model") -> Path:
    """A real git repository holding ``files`` in one commit on branch main."""
    path.mkdir(parents=True, exist_ok=True)
    if not (path / ".git").exists():
        git(path, "init", "-q", "-b", "main")
    for name, text in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text), encoding="utf-8")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", message)
    return path


@pytest.fixture
def repo_factory(tmp_path):
    counter = iter(range(1000))

    def factory(files: dict[str, str], name: str | None = None) -> Path:
        return make_repo(tmp_path / (name or f"repo{next(counter)}"), files)

    return factory


def run_cli(
    *args: str, cwd: Path, timeout: float = 600, env: dict | None = None
) -> subprocess.CompletedProcess:
    """``mlops ARGS`` as a user runs it: a separate process, with its output captured."""
    full_env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "jobs.cli", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_harness(
    tmp_path: Path,
    script: str,
    name: str = "train.py",
    extra_files: dict[str, str] | None = None,
    env: dict | None = None,
    timeout: float = 300,
) -> tuple[subprocess.CompletedProcess, Path]:
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / name).write_text(textwrap.dedent(script), encoding="utf-8", newline="")
    for fname, text in (extra_files or {}).items():
        (code / fname).parent.mkdir(parents=True, exist_ok=True)
        (code / fname).write_text(textwrap.dedent(text), encoding="utf-8")
    out = tmp_path / "trial"
    source = tmp_path / "variant.py"
    source.write_bytes((code / name).read_bytes())
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", MLOPS_SEED="0")
    full_env.update(env or {})
    done = subprocess.run(
        [
            sys.executable,
            str(HARNESS),
            "--code",
            str(code),
            "--script",
            name,
            "--source",
            str(source),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return done, out


@pytest.fixture(scope="session")
def docker_images(tmp_path_factory):
    """The training images on a real engine. `make test` starts the engine; without one this fails loudly."""
    from mlops.runtime.docker import DockerRuntime, engine_available

    if not engine_available():
        pytest.fail("no Docker engine answers: `make test` starts one (scripts/docker-setup.sh)")
    runtime = DockerRuntime.from_env(tmp_path_factory.mktemp("images"))
    volumes_before = {v.name for v in runtime.client.volumes.list()}
    names = ("mlops-sklearn", "mlops-keras3", "mlops-keras2")
    yield {name: runtime.build(name, say=lambda _: None)[0] for name in names}
    # The tests' containers are removed by each test; the volumes they made (the dataset cache when
    # this engine had none) go at the end of the session.
    for volume in runtime.client.volumes.list():
        if volume.name not in volumes_before and volume.name.startswith("mlops-"):
            volume.remove(force=True)


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


def trial_spec(
    root: Path,
    name: str,
    script: str,
    image: str = "mlops-sklearn",
    network: bool = True,
    env: dict | None = None,
    **limits,
) -> TrialSpec:
    """A trial of ``script`` (saved as code/<name>.py under root) in workspace root/ws, ready for a runtime."""
    code = root / "code"
    code.mkdir(parents=True, exist_ok=True)
    text = textwrap.dedent(script)
    (code / f"{name}.py").write_text(text)
    folder = root / "ws" / "runs" / name / "trials" / "0"
    folder.mkdir(parents=True)
    (folder / "source.py").write_text(text)
    return TrialSpec(
        name,
        0,
        code,
        f"{name}.py",
        folder / "source.py",
        folder,
        image=image,
        network=network,
        limits=Limits(**{"timeout_s": 120, "memory_mb": 1024, **limits}),
        env={"MLOPS_SEED": "0", **(env or {})},
    )


def ledger_trial(spec: TrialSpec, runtime: str = "local"):
    """A ledger in the spec's workspace holding one run with the spec's trial 0, pending."""
    workspace = spec.trial_dir.parents[3]
    ledger = Ledger(workspace / "ledger.db")
    run = ledger.create_run(
        name=spec.run_id,
        source=str(spec.code_dir),
        ref=None,
        commit="c" * 40,
        author="tests",
        code_dir=spec.code_dir,
        script=spec.script,
        classification={"kind": "ann", "image": spec.image},
        runtime=runtime,
        metric="accuracy",
        target=0.8,
        strategy="tpe",
        max_trials=1,
        settings={},
        runs_dir=workspace / "ledger-runs",
    )
    return ledger, run, ledger.add_trial(run.id, 0, [], [], seed=0)
