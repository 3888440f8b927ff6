"""The Docker runtime: one container per trial, through docker-py (this package is the one that imports docker;
its images are built by :class:`~mlops.runtime.docker.images.Images`).

Like docker-py's ``ContainerCollection.run``, a trial is create -> start -> wait, here split into the
runtime verbs so the orchestrator can stream logs and enforce the time limit in between. Each container:

- runs the training image's entry point (the harness) as a non-root user, all capabilities dropped,
  ``no-new-privileges``, a read-only root file system with a private /tmp;
- sees the checkout read-only at /code, its trial folder read-write at /trial (what mlops wrote there for
  it read-only over it: ``input_mounts``), the folders of the pushed ``data:`` at the paths the script uses (read-only unless marked writable), and at /cache the dataset
  cache volume of its repository (Keras, scikit-learn and PyTorch dataset caches: a dataset is downloaded
  once per repository, and no repository's trial can plant a file another repository's trial reads), and
  at /datasets, read-only, the data sets imported on this machine (``mlops datasets import``), which the
  harness links into /cache;
- has limits of its own (:mod:`mlops.runtime.docker.limits`) on memory, CPUs, processes, what it writes
  and time; the network on by default, on the bridge ``mlops0`` of its own network (trials cannot reach each
  other; ``scripts/docker-setup.sh`` rejects its traffic to the cloud metadata address), none with
  ``network=False``;
- writes its output to the trial's log through the same :class:`~mlops.runtime.keeper.LogSink` as the
  local runtime (secrets masked, capped), opened without following a link the container may have planted;
- carries labels with the workspace, run and trial, so any process can find a run's containers.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import docker.types
import requests.exceptions

from mlops.config import Environment, read_environment
from mlops.datasets import imported_store
from mlops.domain import EndReason
from mlops.errors import RuntimeUnavailable, TrialLaunchError
from mlops.runtime import diskquota
from mlops.runtime.author_folders import with_author_folders
from mlops.runtime.base import (
    LOG_HEAD_BYTES,
    LOG_TAIL_BYTES,
    Capabilities,
    NothingAhead,
    Outcome,
    TrialSpec,
    open_log,
    stamped_lines,
)
from mlops.runtime.data import input_mounts, mounts, with_data
from mlops.runtime.docker.engine import CACHE_VOLUME, LABEL, TRIALS_BRIDGE, TRIALS_NETWORK, Engine
from mlops.runtime.docker.images import TRIAL_USER
from mlops.runtime.docker.limits import Quota, container_limits, over_disk, quota_of
from mlops.runtime.keeper import LogSink
from mlops_harness.protocol import ENV_DATASETS, LOG_FILE, WORK_DIR

DATASETS_MOUNT = "/datasets"  # where a container sees the machine's imported data sets
STOP_GRACE_S = 5
# How often a running trial is looked at: its disk quota, and a signal to mlops (a signal another thread
# took is only handled when the main thread, waiting here, next runs Python).
POLL_S = 1.0
__all__ = ["CACHE_VOLUME", "LABEL", "TRIALS_BRIDGE", "TRIALS_NETWORK", "DockerHandle", "DockerRuntime"]


def _client_from_env(timeout: float, environment: Environment) -> docker.DockerClient:
    # ssh:// engines: docker-py needs paramiko for them, or it can shell out to the ssh client, which
    # also reads the user's ~/.ssh/config; use the ssh client when paramiko is not installed.
    ssh = (environment.docker_host or "").startswith("ssh://")
    use_ssh_client = ssh and importlib.util.find_spec("paramiko") is None
    return docker.from_env(
        timeout=int(timeout), use_ssh_client=use_ssh_client, environment=dict(environment.variables)
    )


def engine_available(timeout: float = 3.0, environment: Environment | None = None) -> bool:
    """True when a Docker engine answers (DOCKER_HOST honoured)."""
    try:
        client = _client_from_env(timeout, environment or read_environment())
        client.ping()
        client.close()
        return True
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError):
        return False


@dataclass
class DockerHandle:
    spec: TrialSpec
    container_id: str
    started: float
    stop_reason: EndReason | None = None
    log_since_ns: int | None = None  # set on attach: the lines logged until then are in log.txt already
    quota: Quota | None = None  # its disk quota
    detail: str = ""  # what the limit that stopped it found

    @property
    def data(self) -> dict[str, Any]:
        return {"runtime": "docker", "container": self.container_id, "started": self.started}


class DockerRuntime(Engine, NothingAhead):
    name = "docker"

    def __init__(
        self,
        client: docker.DockerClient,
        workspace: Path,
        cache_volume: str = CACHE_VOLUME,
        environment: Environment | None = None,
    ) -> None:
        self.client = client
        self.workspace = workspace.resolve()
        self.cache_volume = cache_volume
        # The caller's environment, read once (mlops/config.py): its secrets are masked, its DOCKER_HOST used.
        self.environment = environment or read_environment()
        self.redact = self.environment.redactor

    @classmethod
    def from_env(
        cls, workspace: Path, cache_volume: str = CACHE_VOLUME, environment: Environment | None = None
    ) -> DockerRuntime:
        """A runtime on the engine DOCKER_HOST names (tcp:// or ssh://), else the local socket."""
        environment = environment or read_environment()
        where = environment.docker_host or "unix:///var/run/docker.sock"
        try:
            client = _client_from_env(120, environment)
            client.ping()
        except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as e:
            raise RuntimeUnavailable(
                f"no Docker engine answers at {where} ({type(e).__name__}); start one with "
                "`sudo bash scripts/docker-setup.sh` (or set DOCKER_HOST=tcp://... or ssh://...), "
                "or run with --runtime local"
            ) from e
        return cls(client, workspace, cache_volume, environment)

    def fresh(self) -> DockerRuntime:
        """The same runtime with a client of its own, as another process would have."""
        return DockerRuntime.from_env(self.workspace, self.cache_volume, self.environment)

    @property
    def local_engine(self) -> bool:
        """The engine runs on this machine (a unix socket): a trial's folder can get a disk quota here."""
        return (self.environment.docker_host or "unix://").startswith("unix://")

    def cache_of(self, spec: TrialSpec) -> str:
        """The dataset cache volume of the trial's repository."""
        return f"{self.cache_volume}-{spec.cache_key}"

    def describe(self) -> str:
        info = self.client.version()
        return f"engine {info.get('Version', '?')} at {self.environment.docker_host or 'the local socket'}"

    # -- the verbs ------------------------------------------------------------------------------------

    def _labels(self, spec: TrialSpec) -> dict[str, str]:
        return {
            LABEL: str(self.workspace),
            "mlops.run": spec.run_id,
            "mlops.trial": str(spec.trial),
            "mlops.name": spec.name,
        }

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(images=True)

    def run(self, spec: TrialSpec) -> DockerHandle:
        tag = self._image_tag(spec)
        spec.trial_dir.mkdir(parents=True, exist_ok=True)
        spec = with_data(spec, mounted=True)  # relative data: paths rewritten to their mount points
        spec = with_author_folders(spec)  # the author's folders the script writes to, from outside/
        user, quota = self._hand_over(spec)
        source = "/trial/" + spec.source_file.relative_to(spec.trial_dir).as_posix()
        limits = spec.limits
        env = {"MLOPS_IN_CONTAINER": "1", **spec.env}
        data = [*input_mounts(spec, "/trial"), *mounts(spec)]  # its inputs read-only, then data:
        store = imported_store(self.workspace)
        if store is not None:  # the imported data sets, read-only, linked by the harness into /cache
            data.append((store, DATASETS_MOUNT, False))
            env[ENV_DATASETS] = DATASETS_MOUNT
        if limits.cpus:
            threads = str(max(1, int(limits.cpus)))
            env.update(OMP_NUM_THREADS=threads, TF_NUM_INTRAOP_THREADS=threads)
        kwargs: dict[str, Any] = {
            "image": tag,
            "command": spec.harness_args(code="/code", source=source, out="/trial"),
            "name": f"mlops-{spec.run_id}-{spec.trial}-{int(time.time() * 1000) % 10**9}",
            "labels": self._labels(spec),
            "environment": env,
            "user": user,
            "working_dir": "/trial",
            "volumes": {
                str(spec.code_dir.resolve()): {"bind": "/code", "mode": "ro"},
                str(spec.trial_dir.resolve()): {"bind": "/trial", "mode": "rw"},
                self.cache_of(spec): {"bind": "/cache", "mode": "rw"},
            },
            "mounts": [  # data: at the paths the script uses, read-only unless marked writable
                docker.types.Mount(at, str(src), type="bind", read_only=not rw) for src, at, rw in data
            ],
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "read_only": True,
            "stdin_open": False,
            "detach": True,
            # The engine's init (tini) is the container's PID 1 and passes a stop's SIGTERM on to the harness,
            # which ends as it does in the local sandbox. As PID 1 itself, the harness would not see it: the
            # training went on until the SIGKILL after STOP_GRACE_S, or to its end.
            "init": True,
        }
        for key, value in container_limits(spec, quota).items():
            kwargs[key] = {**kwargs[key], **value} if key in kwargs else value
        if not spec.network:
            kwargs["network_mode"] = "none"
        if spec.gpus:
            kwargs["device_requests"] = [docker.types.DeviceRequest(count=spec.gpus, capabilities=[["gpu"]])]
        return DockerHandle(spec, self._start(spec, tag, kwargs), time.time(), quota=quota)

    def _hand_over(self, spec: TrialSpec) -> tuple[str, Quota | None]:
        """The container's user and the trial's disk quota (its folder made a file system of that size).
        Never the user's code as root: as root, the trial folder is handed to the images' user."""
        root = os.getuid() == 0
        try:
            uid = int(TRIAL_USER.split(":")[0]) if root else None
            quota = quota_of(spec, uid, local_engine=self.local_engine)
        except OSError as e:
            raise TrialLaunchError(spec.name, f"its disk quota could not be made: {e}") from e
        if not root:
            return f"{os.getuid()}:{os.getgid()}", quota
        uid, gid = (int(v) for v in TRIAL_USER.split(":"))
        for path in [spec.trial_dir, *spec.trial_dir.rglob("*")]:
            os.lchown(path, uid, gid)
        return TRIAL_USER, quota

    def _start(self, spec: TrialSpec, tag: str, kwargs: dict[str, Any]) -> str:
        """Create and start the container; its id. TrialLaunchError (nothing left behind) when it cannot."""
        container = None
        try:
            if spec.network:
                kwargs["network"] = self._trials_network()
            self._ensure_cache_volume(tag, self.cache_of(spec), spec.repository)
            container = self.client.containers.create(**kwargs)
            container.start()
        except docker.errors.APIError as e:
            if container is not None:  # created but not started (a bad mount, a limit the engine refuses)
                with contextlib.suppress(docker.errors.APIError):
                    container.remove(force=True)
            diskquota.release(spec.trial_dir.resolve())
            said = str(e.explanation or e)
            if spec.gpus and "device driver" in said:
                said += f" (the trial asks for {spec.gpus} GPU(s) and this engine has none it can give)"
            raise TrialLaunchError(spec.name, said) from e
        return str(container.id)

    def attach(self, spec: TrialSpec, data: dict[str, Any]) -> DockerHandle | None:
        if data.get("runtime") != "docker":
            return None
        try:
            container = self.client.containers.get(data["container"])
        except docker.errors.NotFound:
            container = None
        if container is None or container.status in ("created", "removing", "dead"):
            diskquota.release(spec.trial_dir.resolve())  # its files where they are read from
            return None
        log = spec.trial_dir / LOG_FILE
        # The lines streamed before the other process went away are in log.txt already: go on after them.
        # The log's modification time is the engine's time stamp of the last line written (see logs).
        since = log.stat().st_mtime_ns if log.exists() else None
        started = float(data.get("started", time.time()))
        quota = None
        if spec.limits.disk_mb is not None or spec.limits.disk_files is not None:
            limit = diskquota.DiskQuota(spec.limits.disk_mb or 1 << 30, spec.limits.disk_files or 1 << 31)
            quota = Quota(limit, mounted=diskquota.mounted(spec.trial_dir.resolve()))
        return DockerHandle(spec, str(container.id), started, log_since_ns=since, quota=quota)

    def logs(self, handle: DockerHandle, follow: bool = True) -> Iterator[str]:
        """The container's output, line by line (secrets masked), also appended to the trial's log.

        Each line written sets the log's modification time to the engine's time stamp of that line, so a
        process that attaches later goes on exactly after it.
        """
        fd = open_log(handle.spec.trial_dir / LOG_FILE)
        sink = LogSink(fd, self.redact.secrets, LOG_HEAD_BYTES, LOG_TAIL_BYTES)
        after = handle.log_since_ns
        since = after // 10**9 if after else None
        try:
            container = self.client.containers.get(handle.container_id)
            stream = container.logs(stream=True, follow=follow, since=since, timestamps=True)
            for parts, at in stamped_lines(stream, after):
                sink.write(b"".join(part + b"\n" for part in parts))
                if at is not None:
                    os.utime(fd, ns=(at, at))
                for part in parts:
                    yield self.redact(part.decode("utf-8", errors="replace"))
        except (docker.errors.NotFound, requests.exceptions.RequestException):
            return
        finally:
            sink.close()
            os.close(fd)

    def wait(self, handle: DockerHandle) -> Outcome:
        limits = handle.spec.limits
        while True:
            remaining = None
            if limits.timeout_s is not None:
                remaining = max(0.1, limits.timeout_s - (time.time() - handle.started))
            over = over_disk(handle.spec, handle.quota, time.monotonic())
            if over is not None:
                handle.detail = handle.detail or over
                self._kill(handle, EndReason.DISK)
            try:
                container = self.client.containers.get(handle.container_id)
                result = container.wait(timeout=min(remaining or POLL_S, POLL_S))
                break
            except docker.errors.NotFound:
                return Outcome(
                    EndReason.LOST, None, None, time.time() - handle.started, "the container is gone"
                )
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
                if limits.timeout_s is not None and time.time() - handle.started >= limits.timeout_s:
                    self._kill(handle, EndReason.TIMEOUT)
                    continue
                if self._answers():
                    continue  # only the poll's time was up
                if not self._engine_back(60):
                    return Outcome(
                        EndReason.LOST,
                        None,
                        None,
                        time.time() - handle.started,
                        "the Docker engine stopped answering",
                    )
        duration = time.time() - handle.started
        container.reload()
        state = container.attrs.get("State", {})
        code = int(result.get("StatusCode", state.get("ExitCode", -1)))
        if handle.stop_reason is EndReason.TIMEOUT:
            return Outcome(EndReason.TIMEOUT, None, None, duration, f"stopped after {limits.timeout_s:g} s")
        quota = handle.quota if handle.quota is not None and handle.quota.mounted else None
        full = diskquota.full(handle.spec.trial_dir.resolve(), quota.quota) if quota and code != 0 else None
        if handle.stop_reason is EndReason.DISK or full:  # stopped for it, or failed on a full one
            handle.stop_reason = EndReason.DISK
            return Outcome(EndReason.DISK, None, None, duration, handle.detail or full or "")
        if state.get("OOMKilled"):
            return Outcome(EndReason.OOM, None, None, duration, f"over {limits.memory_mb} MB")
        if code >= 128 or code < 0:
            return Outcome(EndReason.SIGNAL, None, code - 128 if code >= 128 else None, duration)
        return Outcome(EndReason.EXITED, code, None, duration)

    def _answers(self) -> bool:
        try:
            self.client.ping()
            return True
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            return False

    def _engine_back(self, within_s: float) -> bool:
        deadline = time.time() + within_s
        while time.time() < deadline:
            try:
                self.client.ping()
                return True
            except (docker.errors.DockerException, requests.exceptions.RequestException):
                time.sleep(1)
        return False

    def _kill(self, handle: DockerHandle, reason: EndReason) -> None:
        handle.stop_reason = handle.stop_reason or reason
        try:
            self.client.containers.get(handle.container_id).stop(timeout=STOP_GRACE_S)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError:
            pass

    def stop(self, handle: DockerHandle) -> None:
        self._kill(handle, EndReason.SIGNAL)

    def kill_container(self, data: dict[str, Any]) -> None:
        """SIGKILL a trial's container (chaos tests and benchmarks)."""
        self.client.containers.get(data["container"]).kill()

    def remove(self, handle: DockerHandle) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            self.client.containers.get(handle.container_id).remove(force=True)
        over = handle.stop_reason is EndReason.DISK  # what went over the quota is not copied back
        diskquota.release(handle.spec.trial_dir.resolve(), frozenset({WORK_DIR}) if over else frozenset())
