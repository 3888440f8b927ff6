"""The Ray runtime: each trial is a detached Ray actor that runs the harness in a process of its own, on
whichever node of the cluster Ray picks for the trial's CPUs, GPUs and memory. With ray_actor.py (the
actor, on the node) and ray_storage.py (checkpoints in the ``storage`` setting), the only modules that
import ray or pyarrow.

The actor is named after the workspace, run and trial, so another orchestrator (a restarted ``mlops run``,
Jenkins job 6) finds it again with ``ray.get_actor``. The trial's folder (log, events, metrics, outcome,
checkpoints) is written where the harness runs, so the workspace must be on storage every node mounts at
the same path (one machine, or a shared folder such as NFS): the actor checks that it can write there
before it starts the training, and says which node could not. When a node dies under a trial, its actor
is gone: ``wait`` reports the launch as lost, the supervisor starts it again (a crash), Ray places the new
actor on a node that is alive, and the harness resumes from the last checkpoint in the shared folder (or
in ``storage``, which the actor restores from). When the whole cluster goes away, the command stops, saying
so: the ledger keeps the run, which the same command carries on when the cluster is back.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import marshal
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
import ray.exceptions

from mlops.config import Environment, read_environment
from mlops.datasets import imported_store
from mlops.domain import EndReason
from mlops.envsafe import trial_env
from mlops.errors import RuntimeUnavailable, TrialLaunchError
from mlops.layout import TrialLayout, WorkspaceLayout
from mlops.runtime.base import (
    LOG_HEAD_BYTES,
    LOG_TAIL_BYTES,
    Capabilities,
    NothingAhead,
    Outcome,
    TrialSpec,
    cache_env,
    follow_file,
    repository_cache,
)
from mlops.runtime.data import with_data
from mlops.runtime.ray_actor import STOP_GRACE_S, TrialActor
from mlops_harness.protocol import ENV_DATASETS, LOG_FILE

HARNESS = Path(__file__).resolve().parent.parent.parent / "mlops_harness"
POLL_S = 0.5
SCHEDULE_TIMEOUT_S = 60.0  # a trial no node can take (64 CPUs, a GPU) fails after this, never hangs
CONNECT_TIMEOUT_S = 5.0
# How long one poll of a trial's actor may take. When the cluster goes away, Ray's calls hang, and Ray ends
# this process 60 s after its head stopped answering: a poll this short leaves time to say so ourselves.
POLL_TIMEOUT_S = 10.0
LOST_AFTER_S = 60.0  # an actor that answers no poll for this long (its node hangs) is a lost launch
INIT_TIMEOUT_S = 60.0
PREFIX = "mlops-trial"


# Any: ray.remote's typing serves decorators, not a class made remote at run time.
REMOTE_TRIAL: Any = ray.remote(TrialActor)
NODES: Callable[[], list[dict[str, Any]]] = ray.nodes  # Ray leaves it untyped
_CONNECTED: dict[str, str] = {}  # the address this process's Ray connection goes to (Ray allows one)


@dataclass
class RayHandle:
    spec: TrialSpec
    name: str
    started: float
    node: str = ""
    actor: Any = None
    stop_reason: EndReason | None = None
    log_offset: int = 0

    @property
    def data(self) -> dict[str, Any]:
        return {"runtime": "ray", "actor": self.name, "node": self.node, "started": self.started}


class RayRuntime(NothingAhead):
    name = "ray"

    def __init__(
        self,
        workspace: Path,
        address: str,
        schedule_timeout_s: float = SCHEDULE_TIMEOUT_S,
        storage: str | None = None,
        environment: Environment | None = None,
    ) -> None:
        self.workspace = workspace.resolve()
        self.address = address
        self.environment = environment or read_environment()  # read once: trials see it filtered
        self.schedule_timeout_s = schedule_timeout_s
        self.storage = storage  # where checkpoints are kept for every node (mlops/runtime/ray_storage.py)
        self.namespace = "mlops-" + hashlib.sha256(str(self.workspace).encode()).hexdigest()[:12]
        # Run environments are built over this interpreter into the workspace, which every node mounts at
        # the same path; a trial without one runs on its node's own interpreter.
        self.python = sys.executable

    @classmethod
    def connect(
        cls,
        workspace: Path,
        address: str | None,
        storage: str | None = None,
        environment: Environment | None = None,
    ) -> RayRuntime:
        """A runtime on the Ray cluster at ``address`` (``ray_address``, ``MLOPS_RAY_ADDRESS``), keeping
        checkpoints in ``storage`` (a folder every node mounts or a pyarrow.fs URI) when given."""
        if not address:
            raise RuntimeUnavailable(
                "--runtime ray needs the cluster's address: ray_address in mlops.toml, MLOPS_RAY_ADDRESS or "
                "--ray-address (e.g. 10.0.0.5:6379; start one with `ray start --head`)"
            )
        if storage:
            try:
                from mlops.runtime.ray_storage import open_storage
            except ImportError as e:
                raise RuntimeUnavailable(f"setting storage needs pyarrow installed here: {e}") from e
            open_storage(storage)  # a URI pyarrow cannot open is said now, not on a node
        runtime = cls(workspace, address, storage=storage, environment=environment)
        runtime._init()
        return runtime

    def _head_error(self) -> str | None:
        """Why the head's port does not answer, or None when it does (or when it cannot be asked)."""
        host, _, port = self.address.removeprefix("ray://").rpartition(":")
        if not (host and port.isdigit()):
            return None  # an address we cannot ask directly: Ray's own errors say what happened
        try:
            socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
        except OSError as e:
            return e.strerror or type(e).__name__
        return None

    def _check_cluster(self, spec: TrialSpec, node: str = "") -> None:
        """Raise, saying what to do, when the cluster's head no longer answers (the cluster went away in
        the middle of the run: `ray stop`, the head's machine down). The ledger keeps the run as it was:
        its finished trials, and this one as running, which the same command resumes from its checkpoint."""
        if self._head_error() is None:
            return
        where = f" on node {node[:12]}" if node else ""
        raise RuntimeUnavailable(
            f"the Ray cluster at {self.address} went away in the middle of run {spec.run_id} (trial "
            f"{spec.trial} was training{where}); the ledger keeps what was done: run the same command again "
            "when the cluster is back, and the run carries on (the trial resumes from its last checkpoint)"
        )

    def _unavailable(self, why: str) -> RuntimeUnavailable:
        return RuntimeUnavailable(
            f"no Ray cluster answers at {self.address} ({why}); start one with `ray start --head`, "
            "or run with --runtime local or docker"
        )

    def _init(self) -> None:
        # Ray keeps one connection per process: a process that already talks to this cluster reuses it, and
        # one that talks to another cluster (a test, a tool) disconnects first.
        if ray.is_initialized():
            if _CONNECTED.get("address") == self.address:
                return
            ray.shutdown()
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        why = self._head_error()  # ray.init waits minutes for a cluster that is not there: ask first
        if why is not None:
            raise self._unavailable(why)
        failure: list[BaseException] = []

        def connect() -> None:
            try:
                ray.init(
                    address=self.address,
                    namespace="mlops",
                    log_to_driver=False,
                    logging_level=logging.ERROR,
                    configure_logging=False,
                )
            except BaseException as e:  # noqa: BLE001 (reported below, in the caller's thread)
                failure.append(e)

        thread = threading.Thread(target=connect, daemon=True)
        thread.start()
        thread.join(INIT_TIMEOUT_S)
        if thread.is_alive():
            raise self._unavailable(f"it did not answer within {INIT_TIMEOUT_S:g} s")
        if failure:
            error = failure[0]
            raise self._unavailable(
                f"{type(error).__name__}: {(str(error).splitlines() or [''])[0][:160]}"
            ) from error
        _CONNECTED["address"] = self.address

    def fresh(self) -> RayRuntime:
        """The same runtime as another orchestrator would make it (the contract suite's attach test)."""
        return RayRuntime(self.workspace, self.address, self.schedule_timeout_s, self.storage)

    def describe(self) -> str:
        nodes = [n for n in NODES() if n.get("Alive")]
        cpus = sum(n.get("Resources", {}).get("CPU", 0) for n in nodes)
        gpus = sum(n.get("Resources", {}).get("GPU", 0) for n in nodes)
        kept = f"; checkpoints in {self.storage}" if self.storage else ""
        return f"cluster at {self.address}: {len(nodes)} node(s), {cpus:g} CPUs, {gpus:g} GPUs{kept}"

    def _actor_name(self, spec: TrialSpec) -> str:
        return f"{PREFIX}-{spec.run_id}-{spec.trial}"

    def _environment(self, spec: TrialSpec, python: str, cpus: float) -> dict[str, str]:
        """The training's environment: an allow-list, so the caller's secrets never travel."""
        threads = str(max(1, int(cpus)))
        own = {
            "PATH": f"{Path(python).parent}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(TrialLayout(spec.trial_dir).work),
            "PYTHONUNBUFFERED": "1",
            "MPLBACKEND": "Agg",
            "OMP_NUM_THREADS": threads,
            "TF_NUM_INTRAOP_THREADS": threads,
            # The repository's cache and the imported data sets, in the workspace every node mounts: a data
            # set is fetched once, not once a trial.
            **cache_env(repository_cache(WorkspaceLayout(self.workspace).cache, spec)),
        }
        store = imported_store(self.workspace)
        if store is not None:
            own[ENV_DATASETS] = str(store)
        if "TF_CPP_MIN_LOG_LEVEL" not in self.environment.variables:
            own["TF_CPP_MIN_LOG_LEVEL"] = "2"
        return trial_env(self.environment.variables, spec.env, own)

    def _actor_args(self, spec: TrialSpec) -> tuple[Any, ...]:
        """The trial actor's arguments after its job: the trial folder, the memory limit, the folders of
        ``data:``, the checkpoint storage and the disk quota (MB, files)."""
        data = [(d.target, d.source, d.writable) for d in spec.data]
        kept = (self.storage, f"{self.namespace}/{spec.run_id}/{spec.trial}") if self.storage else None
        limits = spec.limits
        quota = None
        if limits.disk_mb is not None or limits.disk_files is not None:
            quota = (limits.disk_mb or 1 << 30, limits.disk_files or 1 << 31)
        return str(spec.trial_dir), limits.memory_mb, data, kept, quota

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(python=self.python)  # each node's own sandboxing is the cluster's

    def prepare(self, images: list[str], say: Callable[[str], None]) -> None:
        """Nothing: a Ray trial runs on an interpreter, not an image."""

    def run(self, spec: TrialSpec) -> RayHandle:
        self._check_cluster(spec)
        spec = with_data(spec, mounted=False)  # data: paths rewritten in a copy of the source
        # The node makes the trial folder (and says so when it cannot): the workspace is shared storage.
        log_path = spec.trial_dir / LOG_FILE
        offset = log_path.stat().st_size if log_path.exists() else 0
        cpus = spec.limits.cpus or 1.0
        python = spec.python or sys.executable
        env = self._environment(spec, python, cpus)
        # The trial's environment (mlops/envs) names its interpreter; on shared storage, every node has it.
        command = [python, str(HARNESS)] + spec.harness_args(
            code=str(spec.code_dir), source=str(spec.source_file), out=str(spec.trial_dir)
        )
        name = self._actor_name(spec)
        with contextlib.suppress(ValueError):  # a dead launch of this trial still holding the name
            ray.kill(ray.get_actor(name, namespace=self.namespace))
        options: dict[str, Any] = {
            "name": name,
            "namespace": self.namespace,  # one per workspace: runs of two workspaces never meet
            "lifetime": "detached",
            "num_cpus": cpus,
            "max_restarts": 0,
        }
        if spec.limits.memory_mb:
            options["memory"] = spec.limits.memory_mb * 1024 * 1024
        if spec.gpus:
            options["num_gpus"] = spec.gpus
        job = {
            "argv": command,
            "env": env,
            "cwd": str(spec.trial_dir),
            "secrets": list(self.environment.secrets),  # masked in the log, on the node
            "head": LOG_HEAD_BYTES,
            "tail": LOG_TAIL_BYTES,
            "cpus": None,
            "nproc": None,
            "pdeathsig": True,
        }
        actor = REMOTE_TRIAL.options(**options).remote(marshal.dumps(job), *self._actor_args(spec))
        try:
            error, node, _ = ray.get(actor.started.remote(), timeout=self.schedule_timeout_s)
        except ray.exceptions.GetTimeoutError:
            ray.kill(actor)
            asks = f"{cpus:g} CPUs" + (f", {spec.gpus} GPUs" if spec.gpus else "")
            if spec.limits.memory_mb:
                asks += f", {spec.limits.memory_mb} MB"
            raise TrialLaunchError(
                spec.name,
                f"no node of the cluster at {self.address} took it within {self.schedule_timeout_s:g} s: it asks "
                f"for {asks} ({self.describe()})",
            ) from None
        except ray.exceptions.RayError as e:
            self._check_cluster(spec)
            raise TrialLaunchError(spec.name, f"the cluster could not start it: {e}") from e
        if error:
            ray.kill(actor)
            raise TrialLaunchError(spec.name, error)
        return RayHandle(spec, name, time.time(), node, actor, log_offset=offset)

    def attach(self, spec: TrialSpec, data: dict[str, Any]) -> RayHandle | None:
        if data.get("runtime") != "ray":
            return None
        try:
            actor = ray.get_actor(str(data.get("actor")), namespace=self.namespace)
            ray.get(actor.poll.remote(), timeout=30)
        except (ValueError, ray.exceptions.RayError):
            return None
        log = spec.trial_dir / LOG_FILE
        offset = log.stat().st_size if log.exists() else 0
        started = float(data.get("started", time.time()))
        return RayHandle(
            spec, str(data["actor"]), started, str(data.get("node", "")), actor, log_offset=offset
        )

    def _alive(self, handle: RayHandle) -> bool:
        try:
            code, _ = ray.get(handle.actor.poll.remote(), timeout=30)
        except ray.exceptions.RayError:
            return False
        return code is None

    def logs(self, handle: RayHandle, follow: bool = True) -> Iterator[str]:
        alive = (lambda: self._alive(handle)) if follow else (lambda: False)
        return follow_file(handle.spec.trial_dir / LOG_FILE, alive, start=handle.log_offset)

    def wait(self, handle: RayHandle) -> Outcome:
        limits = handle.spec.limits
        answered = time.time()
        while True:
            try:
                code, reason = ray.get(handle.actor.poll.remote(), timeout=POLL_TIMEOUT_S)
            except ray.exceptions.RayError as e:
                self._check_cluster(handle.spec, handle.node)
                if isinstance(e, ray.exceptions.GetTimeoutError) and time.time() - answered < LOST_AFTER_S:
                    continue  # a busy node: ask again
                duration = time.time() - handle.started
                where = f" (node {handle.node[:12]})" if handle.node else ""
                return Outcome(EndReason.LOST, None, None, duration, f"its Ray actor{where} went away")
            answered = time.time()
            if code is not None:
                break
            if limits.timeout_s is not None and time.time() - handle.started > limits.timeout_s:
                handle.stop_reason = handle.stop_reason or EndReason.TIMEOUT
                self.stop(handle)
            time.sleep(POLL_S)
        duration = time.time() - handle.started
        if handle.stop_reason is EndReason.TIMEOUT:
            return Outcome(EndReason.TIMEOUT, None, None, duration, f"stopped after {limits.timeout_s:g} s")
        if reason == EndReason.OOM.value:
            return Outcome(EndReason.OOM, None, None, duration, f"over {limits.memory_mb} MB")
        if reason == EndReason.DISK.value:
            said = f"its folder held over {limits.disk_mb} MB or {limits.disk_files} files"
            return Outcome(EndReason.DISK, None, None, duration, said)
        if reason is not None or code < 0:
            return Outcome(EndReason.SIGNAL, None, -code if code < 0 else None, duration)
        return Outcome(EndReason.EXITED, code, None, duration)

    def stop(self, handle: RayHandle) -> None:
        with contextlib.suppress(ray.exceptions.RayError):
            ray.get(handle.actor.kill.remote(EndReason.SIGNAL.value), timeout=STOP_GRACE_S + 10)

    def remove(self, handle: RayHandle) -> None:
        with contextlib.suppress(ray.exceptions.RayError, ValueError):
            ray.kill(handle.actor)

    def cleanup(self, keep: set[str]) -> list[str]:
        removed = []
        for entry in ray.util.list_named_actors(all_namespaces=True):
            if not isinstance(entry, dict) or entry.get("namespace") != self.namespace:
                continue
            name = str(entry.get("name", ""))
            if not name.startswith(PREFIX + "-"):
                continue
            run, _, trial = name[len(PREFIX) + 1 :].rpartition("-")
            if f"{run}/{trial}" in keep:
                continue
            with contextlib.suppress(ValueError, ray.exceptions.RayError):
                actor = ray.get_actor(name, namespace=self.namespace)
                with contextlib.suppress(ray.exceptions.RayError):
                    ray.get(actor.kill.remote(EndReason.SIGNAL.value), timeout=STOP_GRACE_S + 10)
                ray.kill(actor)
                removed.append(f"{run}/{trial}")
        return removed
