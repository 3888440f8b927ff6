"""Where uv runs: inside a build sandbox, never on the host as whoever runs mlops.

Building an environment runs code the push chose: a package's build backend (``setup.py``), fetched by
name from the index or allowed by the machine's owner. So every uv command of a build (venv, compile,
install) runs in a :class:`Box`:

- :class:`LocalBox`: bubblewrap, as a trial's sandbox (``mlops/runtime/sandbox.py``), as ``nobody`` when
  mlops runs as root, with no network of its own;
- :class:`ContainerBox`: a container of the base image (``mlops/runtime/docker/``), no network, not root;
- :class:`PlainBox`: a plain process, only for ``--runtime local --unsandboxed`` (the owner's choice).

Every path appears inside at the same place as outside. What a box sees: the system, the base's interpreter
(read-only), the uv binary and the forwarder (read-only), the machine's CA bundle and local package folders
(read-only), the inputs of the build (read-only), and only the environment being built and a uv cache to
write. Its only way out is the index proxy's socket (:mod:`mlops.envs.proxy`), at :data:`PROXY_DIR`.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mlops.errors import RuntimeUnavailable
from mlops.runtime import sandbox

PROXY_DIR = Path("/run/mlops-build")  # where a build sees the proxy's folder
CA_FILE = Path("/run/mlops-ca.pem")  # where a build sees the machine's CA bundle (SSL_CERT_FILE)
FORWARDER = Path(__file__).resolve().parent / "forwarder.py"
TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class Job:
    """One command of a build: ``python -I -S forwarder.py SOCKET -- command...`` inside a box."""

    command: tuple[str, ...]  # uv and its arguments (or any command: a probe)
    python: str  # the interpreter inside that runs the forwarder: the base's (local), "python" (an image)
    writable: tuple[Path, ...] = ()  # the environment being built, its uv cache
    readable: tuple[Path, ...] = ()  # inputs: requirement files, allowed sources, the base's environments
    cert: Path | None = None  # the machine's CA bundle, seen at CA_FILE (it re-signs TLS)
    cwd: Path = Path("/tmp")  # noqa: S108 (the box's private /tmp)


@dataclass(frozen=True)
class Done:
    code: int
    stdout: str
    stderr: str


class Box(Protocol):
    """Runs a :class:`Job` isolated, with ``env`` as its whole environment and ``proxy`` (the folder of the
    index proxy's socket) mounted at :data:`PROXY_DIR`."""

    image: str  # the image a container box runs ("" for the local ones)

    def run(self, job: Job, env: Mapping[str, str], proxy: Path) -> Done: ...


def forwarded(job: Job) -> list[str]:
    """The command line inside: the forwarder (run by the base's Python), then the job's command."""
    socket = str(PROXY_DIR / "index.sock")
    return [job.python, "-I", "-S", str(FORWARDER), socket, "--", *job.command]


def _hand(paths: tuple[Path, ...], uid: int) -> None:
    """Give the folders a build writes to its unprivileged user (their contents too, links not followed)."""
    for top in paths:
        top.mkdir(parents=True, exist_ok=True)
        os.lchown(top, uid, uid)
        for root, dirs, files in os.walk(top):
            for name in dirs + files:
                os.lchown(os.path.join(root, name), uid, uid)


def take_back(top: Path) -> None:
    """A finished environment becomes root's: no later process of the build's user may change it."""
    if os.geteuid() != 0 or not top.exists():
        return
    os.lchown(top, 0, 0)
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), 0, 0)


class LocalBox:
    """Bubblewrap: the build runs as a trial does, with no network but the proxy."""

    image = ""

    def __init__(self, bwrap: str, as_root: bool, uv: str) -> None:
        self.bwrap = bwrap
        self.as_root = as_root
        self.uv = Path(uv)

    @classmethod
    def here(cls, uv: str) -> LocalBox:
        bwrap = sandbox.find_bwrap()
        as_root = os.geteuid() == 0
        why = sandbox.problem(bwrap, as_root)
        if bwrap is None or why is not None:
            raise RuntimeUnavailable(f"environments are built in a sandbox, but {why}")
        return cls(bwrap, as_root, uv)

    def run(self, job: Job, env: Mapping[str, str], proxy: Path) -> Done:
        roots = sandbox.python_roots(job.python) if job.python.startswith("/") else ()
        readable = tuple(dict.fromkeys((*roots, self.uv, FORWARDER, *job.readable)))
        if self.as_root:
            _hand(job.writable, sandbox.TRIAL_UID)
        mapped = ((proxy, PROXY_DIR, False), *(((job.cert, CA_FILE, False),) if job.cert else ()))
        box = sandbox.build_sandbox(
            self.bwrap, tuple(p for p in readable if p.exists()), job.writable, mapped, self.as_root, job.cwd
        )
        return _run(sandbox.bwrap_argv(box, forwarded(job)), {"PATH": "/usr/bin:/bin", **env, **_ca(job)})


class PlainBox:
    """No sandbox: ``--runtime local --unsandboxed`` runs its builds, like its trials, as plain processes."""

    image = ""

    def run(self, job: Job, env: Mapping[str, str], proxy: Path) -> Done:
        command = [job.python, "-I", "-S", str(FORWARDER), str(proxy / "index.sock"), "--", *job.command]
        ca = {"SSL_CERT_FILE": str(job.cert)} if job.cert else {}
        return _run(command, {"PATH": "/usr/bin:/bin", **env, **ca}, job.cwd if job.cwd.exists() else None)


def _ca(job: Job) -> dict[str, str]:
    return {"SSL_CERT_FILE": str(CA_FILE)} if job.cert else {}


def _run(argv: list[str], env: Mapping[str, str], cwd: Path | None = None) -> Done:
    try:
        done = subprocess.run(  # noqa: S603 (our own command line)
            argv, capture_output=True, text=True, env=dict(env), cwd=cwd, timeout=TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        return Done(124, "", f"took more than {TIMEOUT_S:g} s")
    return Done(done.returncode, done.stdout, done.stderr)


class Engine(Protocol):
    """What a container box needs of the Docker runtime (``mlops/runtime/docker/images.py``)."""

    def run_build(
        self, image: str, command: list[str], env: Mapping[str, str], mounts: list[tuple[Path, Path, bool]],
        workdir: str,
    ) -> tuple[int, str, str]: ...  # fmt: skip

    def build_uid(self) -> int | None:
        """The uid a build container runs as, when its folders must be handed to it (mlops runs as root)."""


class ContainerBox:
    """A container of the base image: the build runs on the Python and the libraries it builds for."""

    def __init__(self, engine: Engine, image: str, uv: str) -> None:
        self.engine = engine
        self.image = image
        self.uv = Path(uv)

    def run(self, job: Job, env: Mapping[str, str], proxy: Path) -> Done:
        mounts = [(self.uv, self.uv, False), (FORWARDER, FORWARDER, False), (proxy, PROXY_DIR, False)]
        mounts += [(job.cert, CA_FILE, False)] if job.cert else []
        mounts += [(p, p, False) for p in job.readable if p.exists()]
        mounts += [(p, p, True) for p in job.writable]
        uid = self.engine.build_uid()
        if uid is not None:
            _hand(job.writable, uid)
        return Done(
            *self.engine.run_build(self.image, forwarded(job), {**env, **_ca(job)}, mounts, str(job.cwd))
        )
