"""The local runtime: each trial in a bubblewrap sandbox on this machine, with a time and a memory limit.

A trial is started by a keeper (``keeper.py``), a small process in a session of its own that writes the
trial's output to its log file (secrets masked, capped), so the training survives the orchestrator being
killed and a restarted orchestrator attaches to it again by the keeper's process id. The keeper runs the
harness inside the sandbox :mod:`mlops.runtime.sandbox` describes (``--unsandboxed``: as a plain process).
The memory limit is watched from here, on every process of the sandbox (its PID namespace keeps even a
double-forked grandchild inside the keeper's tree) plus what its private ``/tmp`` holds, because an
address-space rlimit breaks TensorFlow, which reserves far more virtual memory than it uses.
"""

from __future__ import annotations

import contextlib
import marshal
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from mlops.datasets import imported_store
from mlops.domain import EndReason
from mlops.envsafe import Redactor, trial_env
from mlops.errors import RuntimeUnavailable, TrialLaunchError
from mlops.runtime import sandbox
from mlops.runtime.ahead import StartedAhead, Waiting, put_back_source
from mlops.runtime.ahead import wait_s as ahead_wait_s
from mlops.runtime.base import (
    LOG_HEAD_BYTES,
    LOG_TAIL_BYTES,
    Outcome,
    TrialSpec,
    cache_env,
    follow_file,
    open_log,
    repository_cache,
)
from mlops.runtime.data import mounts, with_data
from mlops_harness.protocol import ENV_DATASETS, GO_FILE, LOG_FILE, OUTCOME_FILE, read_json

HARNESS = Path(__file__).resolve().parent.parent.parent / "mlops_harness"  # run as `python <folder> ...`
KEEPER = Path(__file__).resolve().parent / "keeper.py"
POLL_S = 0.25
STOP_GRACE_S = 5.0


@dataclass
class LocalHandle:
    spec: TrialSpec
    pid: int  # the keeper's
    create_time: float
    started: float
    process: subprocess.Popen[bytes] | None = None  # None when attached from another orchestrator
    log_offset: int = 0  # where this launch's output starts in the trial's log
    stop_reason: EndReason | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    cores: tuple[int, ...] = ()  # the CPUs it is pinned to (none: all of this process's)
    source: str | None = None  # started ahead: its source as given, put back if the training changed it

    @property
    def data(self) -> dict[str, Any]:
        return {"runtime": "local", "pid": self.pid, "create_time": self.create_time, "started": self.started}


class LocalRuntime:
    """Runs the harness with this interpreter, in a sandbox (unless ``sandboxed=False``), through a keeper."""

    name = "local"

    def __init__(
        self,
        workspace: Path | None = None,
        python: str | None = None,
        *,
        sandboxed: bool = True,
        caller_env: Mapping[str, str] | None = None,
    ) -> None:
        self.workspace = workspace.resolve() if workspace else None
        self.python = python or sys.executable
        self.caller_env = dict(os.environ if caller_env is None else caller_env)
        self.redact = Redactor.from_env(self.caller_env)
        self.as_root = os.geteuid() == 0
        self.bwrap: str | None = None
        self.python_roots: tuple[Path, ...] = ()
        self.identity: Path | None = None  # the sandbox's passwd and group
        if sandboxed:
            bwrap = sandbox.find_bwrap()
            why = sandbox.problem(bwrap, self.as_root)
            if why is not None:
                raise RuntimeUnavailable(
                    f"the local runtime runs every trial in a sandbox, but {why}; "
                    "or run with --runtime local --unsandboxed to run trials as plain processes"
                )
            self.bwrap = bwrap
            self.python_roots = sandbox.python_roots(self.python)
            self.identity = sandbox.identity_dir(self.as_root)
        self._handles: dict[str, LocalHandle] = {}
        self._launching = threading.Lock()  # parallel trials choose their cores one after the other
        self._ahead = StartedAhead()  # harnesses of later trials, waiting for them (see prestart)

    @property
    def sandboxed(self) -> bool:
        return self.bwrap is not None

    def describe(self) -> str:
        if not self.sandboxed:
            return "local processes, unsandboxed: trials can read and write what this user can"
        who = f"as uid {sandbox.TRIAL_UID}" if self.as_root else "as this user, in a user namespace"
        return f"local processes in a bubblewrap sandbox ({who})"

    # -- launching ------------------------------------------------------------------------------------

    def cache_dir(self, spec: TrialSpec) -> Path:
        root = self.workspace / "cache" if self.workspace else spec.trial_dir.resolve().parent / ".cache"
        return repository_cache(root, spec)

    def _environment(self, spec: TrialSpec, cache: Path) -> dict[str, str]:
        home = "/tmp" if self.sandboxed else self.caller_env.get("HOME", "/tmp")  # noqa: S108 (private)
        own = {
            "PATH": f"{Path(self.python).parent}:/usr/local/bin:/usr/bin:/bin",
            "HOME": home,
            "TMPDIR": "/tmp" if self.sandboxed else self.caller_env.get("TMPDIR", "/tmp"),  # noqa: S108
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "MPLBACKEND": "Agg",
            **cache_env(cache),
        }
        if "TF_CPP_MIN_LOG_LEVEL" not in self.caller_env:
            own["TF_CPP_MIN_LOG_LEVEL"] = "2"
        store = imported_store(self.workspace)
        if store is not None:
            own[ENV_DATASETS] = str(store)
        if spec.limits.cpus:
            threads = str(max(1, int(spec.limits.cpus)))
            own.update(OMP_NUM_THREADS=threads, TF_NUM_INTRAOP_THREADS=threads)
        return trial_env(self.caller_env, spec.env, own)

    def _roots(self, spec: TrialSpec) -> tuple[Path, ...]:
        """What the trial's interpreter needs to see: this one's install, and the run's environment's."""
        if not spec.python or spec.python == self.python:
            return self.python_roots
        return (*self.python_roots, *sandbox.python_roots(spec.python))

    def sandbox_for(self, spec: TrialSpec, cache: Path, ahead: bool = False) -> sandbox.Sandbox:
        """What the trial may see and touch (the sandbox must be available). Started ahead, its source is
        written after the sandbox is made, so it cannot be mounted read-only: it is checked afterwards."""
        assert self.bwrap is not None
        trial_dir, code, source = (
            spec.trial_dir.resolve(),
            spec.code_dir.resolve(),
            spec.source_file.resolve(),
        )
        inside = source.is_relative_to(trial_dir)
        store = imported_store(self.workspace)
        return sandbox.Sandbox(
            bwrap=self.bwrap,
            read_only=(
                *self._roots(spec),
                HARNESS,
                code,
                *(() if inside else (source,)),
                *((store,) if store else ()),
            ),
            writable=(trial_dir, cache),
            protected=(trial_dir / LOG_FILE, *((source,) if inside and not ahead else ())),
            network=spec.network,
            tmp_mb=spec.limits.memory_mb or 1024,
            uid=sandbox.TRIAL_UID if self.as_root else None,
            workdir=trial_dir,
            mapped=tuple((src, Path(at), rw) for src, at, rw in mounts(spec)),
            identity=self.identity,
        )

    def _command(self, spec: TrialSpec, cache: Path, ahead: bool = False) -> list[str]:
        trial_dir, code, source = (
            spec.trial_dir.resolve(),
            spec.code_dir.resolve(),
            spec.source_file.resolve(),
        )
        harness = [spec.python or self.python, str(HARNESS)]  # the run's environment's, when it has one
        harness += spec.harness_args(code=str(code), source=str(source), out=str(trial_dir))
        if ahead:
            harness += ["--wait-for", str(trial_dir / GO_FILE), "--wait-s", f"{ahead_wait_s(spec):g}"]
        if self.bwrap is None:
            return harness
        return sandbox.bwrap_argv(self.sandbox_for(spec, cache, ahead), harness)

    def _hand_over(self, spec: TrialSpec, cache: Path) -> None:
        """When mlops runs as root the training runs as nobody: it gets its trial folder and its cache."""
        if not (self.sandboxed and self.as_root):
            return
        uid = gid = sandbox.TRIAL_UID
        for top in (spec.trial_dir, cache):
            os.lchown(top, uid, gid)
            for root, dirs, files in os.walk(top):
                for name in dirs + files:
                    os.lchown(os.path.join(root, name), uid, gid)

    def run(self, spec: TrialSpec) -> LocalHandle:
        handle = self._given(spec)
        if handle is not None:
            return handle
        return self._launch(spec)

    def _launch(self, spec: TrialSpec, ahead: bool = False) -> LocalHandle:
        spec.trial_dir.mkdir(parents=True, exist_ok=True)
        (spec.trial_dir / GO_FILE).unlink(missing_ok=True)  # an earlier launch's
        spec = with_data(spec, mounted=self.sandboxed)  # unsandboxed: data: paths rewritten in a copy
        try:
            log_fd = open_log(spec.trial_dir / LOG_FILE)
        except OSError as e:
            raise TrialLaunchError(spec.name, str(e)) from e
        try:
            log_offset = os.fstat(log_fd).st_size
            cache = self.cache_dir(spec)
            self._hand_over(spec, cache)
            job = {
                "argv": self._command(spec, cache, ahead),
                "env": self._environment(spec, cache),
                "cwd": str(spec.trial_dir.resolve()),
                "secrets": list(self.redact.secrets),
                "head": LOG_HEAD_BYTES,
                "tail": LOG_TAIL_BYTES,
                "cpus": math.ceil(spec.limits.cpus) if spec.limits.cpus else None,
                "nproc": spec.limits.pids if (self.sandboxed and self.as_root) else None,
                "pdeathsig": not self.sandboxed,
                "go": str(spec.trial_dir.resolve() / GO_FILE) if ahead else None,
                "orchestrator": os.getpid(),
            }
            with self._launching:
                cores = self._free_cores(math.ceil(spec.limits.cpus)) if spec.limits.cpus else []
                job["cores"] = cores
                process = subprocess.Popen(  # noqa: S603 (the keeper is ours; the script runs inside it)
                    [self.python, "-I", "-S", str(KEEPER), "--trial", str(spec.trial_dir.resolve())],
                    stdin=subprocess.PIPE,
                    stdout=log_fd,
                    stderr=log_fd,
                    env={},
                    cwd=spec.trial_dir,
                    start_new_session=True,  # its own session: killed as one, survives us
                )
                assert process.stdin is not None
                with process.stdin:
                    process.stdin.write(marshal.dumps(job))
                try:
                    create_time = psutil.Process(process.pid).create_time()
                except psutil.Error:
                    create_time = 0.0
                handle = LocalHandle(
                    spec,
                    process.pid,
                    create_time,
                    time.time(),
                    process,
                    log_offset,
                    cores=tuple(cores),
                )
                if not ahead:
                    self._handles[spec.name] = handle
        except OSError as e:
            raise TrialLaunchError(spec.name, str(e)) from e
        finally:
            os.close(log_fd)
        return handle

    # -- starting the next trial ahead ----------------------------------------------------------------

    def prestart(self, spec: TrialSpec | None) -> None:
        """Start the harness of a later trial now, so that its interpreter and libraries load while the
        current trial trains (see ahead.py); ``run`` of an equal spec gives it the trial. Sandboxed only:
        its libraries load before the harness's guards are in place, which the sandbox makes harmless.
        ``None``: the ones waiting are not needed (the run is over)."""
        if spec is None:
            for waiting in self._ahead.clear():
                self._drop(waiting)
            return
        if not self.sandboxed or spec.check_model:
            return
        if not spec.source_file.resolve().is_relative_to(spec.trial_dir.resolve()):
            return  # a source outside the trial folder must exist to be mounted
        earlier = self._ahead.pop(spec)
        if earlier is not None:
            self._drop(earlier)
        try:
            handle = self._launch(spec, ahead=True)
        except TrialLaunchError:
            return  # the trial is started as usual when it comes
        self._ahead.add(Waiting(spec, handle))

    def _given(self, spec: TrialSpec) -> LocalHandle | None:
        """The harness started ahead for exactly this spec, given its trial; None when there is none, or
        it was started for another spec (then it is ended), or went away."""
        waiting, passed = self._ahead.take(spec)
        for other in passed:
            self._drop(other)
        if waiting is None:
            return None
        handle: LocalHandle = waiting.handle
        if waiting.spec != spec or not self._alive(handle) or not spec.source_file.exists():
            self._drop(waiting)
            return None
        handle.source = spec.source_file.read_text(encoding="utf-8", errors="replace")
        (spec.trial_dir / GO_FILE).write_bytes(b"")
        handle.started = time.time()
        self._handles[spec.name] = handle
        return handle

    def _drop(self, waiting: Waiting) -> None:
        """End a harness started ahead that will not be given its trial; its folder goes too, unless the
        trial was recorded meanwhile (a trial's source is written before it is recorded)."""
        self._kill(waiting.handle, EndReason.SIGNAL)
        if not waiting.spec.source_file.exists():
            shutil.rmtree(waiting.spec.trial_dir, ignore_errors=True)

    def _free_cores(self, count: int) -> list[int]:
        """``count`` of this process's CPUs, the least used by the trials running first: trials run at once
        with a share of the machine each get cores of their own, not all the first ones."""
        load = dict.fromkeys(sorted(os.sched_getaffinity(0)), 0)
        for other in list(self._handles.values()):
            if other.cores and self._alive(other):
                for core in other.cores:
                    if core in load:
                        load[core] += 1
        return sorted(sorted(load, key=lambda core: (load[core], core))[: max(1, count)])

    def attach(self, spec: TrialSpec, data: dict[str, Any]) -> LocalHandle | None:
        if data.get("runtime") != "local":
            return None
        pid = int(data.get("pid", 0))
        try:
            proc = psutil.Process(pid)
            if abs(proc.create_time() - float(data.get("create_time", 0))) > 1.0:
                return None  # the pid was reused by another program
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
        except psutil.Error:
            return None
        log_path = spec.trial_dir / LOG_FILE
        offset = log_path.stat().st_size if log_path.exists() else 0
        started = float(data.get("started", time.time()))
        handle = LocalHandle(spec, pid, float(data["create_time"]), started, log_offset=offset)
        self._handles[spec.name] = handle
        return handle

    # -- watching -------------------------------------------------------------------------------------

    def _alive(self, handle: LocalHandle) -> bool:
        if handle.process is not None:
            return handle.process.poll() is None
        try:
            proc = psutil.Process(handle.pid)
            return proc.status() != psutil.STATUS_ZOMBIE and abs(proc.create_time() - handle.create_time) < 1
        except psutil.Error:
            return False

    def logs(self, handle: LocalHandle, follow: bool = True) -> Iterator[str]:
        path = handle.spec.trial_dir / LOG_FILE
        alive = (lambda: self._alive(handle)) if follow else (lambda: False)
        return follow_file(path, alive, start=handle.log_offset)

    @staticmethod
    def _tree(handle: LocalHandle) -> list[psutil.Process]:
        """Every process the keeper started, down to the last grandchild (the sandbox keeps them all)."""
        try:
            return list(psutil.Process(handle.pid).children(recursive=True))
        except psutil.Error:
            return []

    @staticmethod
    def _is_harness(proc: psutil.Process) -> bool:
        try:
            cmdline = proc.cmdline()
        except psutil.Error:
            return False
        return len(cmdline) >= 2 and cmdline[1] == str(HARNESS)

    def _memory_mb(self, handle: LocalHandle) -> float:
        total = 0
        tree = self._tree(handle)
        for proc in tree:
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        inside = [p for p in tree if self._is_harness(p)]
        if self.sandboxed and inside:  # the private /tmp and /dev/shm are memory too
            root = f"/proc/{inside[0].pid}/root"
            for folder in ("tmp", "dev/shm"):
                with contextlib.suppress(OSError):
                    fs = os.statvfs(f"{root}/{folder}")
                    total += (fs.f_blocks - fs.f_bfree) * fs.f_frsize
        return total / (1024 * 1024)

    def wait(self, handle: LocalHandle) -> Outcome:
        limits = handle.spec.limits
        while self._alive(handle):
            elapsed = time.time() - handle.started
            if limits.timeout_s is not None and elapsed > limits.timeout_s:
                self._kill(handle, EndReason.TIMEOUT)
            elif limits.memory_mb is not None and self._memory_mb(handle) > limits.memory_mb:
                self._kill(handle, EndReason.OOM)
            self._pause(handle)
        duration = time.time() - handle.started
        if handle.source is not None:
            put_back_source(handle.spec, handle.source)
        detail = ""
        if handle.stop_reason is EndReason.TIMEOUT:
            detail = f"stopped after {limits.timeout_s:g} s"
        elif handle.stop_reason is EndReason.OOM:
            detail = f"over {limits.memory_mb} MB"
        if handle.stop_reason is not None:
            return Outcome(handle.stop_reason, None, None, duration, detail)
        if handle.process is not None:
            code = handle.process.returncode
            if code < 0:
                return Outcome(EndReason.SIGNAL, None, -code, duration, "the keeper was killed")
            if code >= 128:  # the keeper reports a training killed by signal N as 128 + N
                return Outcome(EndReason.SIGNAL, None, code - 128, duration)
            return Outcome(EndReason.EXITED, code, None, duration)
        # Attached to a keeper we did not start: its exit status is lost to us; the harness's file says.
        outcome = read_json(handle.spec.trial_dir / OUTCOME_FILE)
        if outcome is not None and "exit_code" in outcome:
            return Outcome(EndReason.EXITED, int(outcome["exit_code"]), None, duration)
        return Outcome(EndReason.SIGNAL, None, None, duration, "ended without writing its outcome")

    @staticmethod
    def _pause(handle: LocalHandle) -> None:
        """POLL_S, or less when the keeper (ours) ends first: the next trial waits for nothing."""
        if handle.process is None:
            time.sleep(POLL_S)
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            handle.process.wait(timeout=POLL_S)

    # -- ending ---------------------------------------------------------------------------------------

    def _kill(self, handle: LocalHandle, reason: EndReason) -> None:
        with handle.lock:
            if handle.stop_reason is None:
                handle.stop_reason = reason
        tree = self._tree(handle)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(handle.pid, signal.SIGTERM)  # the keeper ends the training and writes the log's tail
        deadline = time.time() + STOP_GRACE_S
        while time.time() < deadline and self._alive(handle):
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(handle.pid, signal.SIGKILL)
        for proc in tree:  # unsandboxed, a child may have left the keeper's session
            with contextlib.suppress(psutil.Error):
                proc.kill()
        if handle.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                handle.process.wait(timeout=5)

    def stop(self, handle: LocalHandle) -> None:
        self._kill(handle, EndReason.SIGNAL)

    def remove(self, handle: LocalHandle) -> None:
        self._handles.pop(handle.spec.name, None)
        if handle.process is not None and handle.process.poll() is None:
            self._kill(handle, EndReason.SIGNAL)

    def cleanup(self, keep: set[str]) -> list[str]:
        """Keepers and harnesses of this workspace whose trial is not in ``keep`` (strays of a crash) end."""
        removed: list[str] = []
        if self.workspace is None:
            return removed
        for proc in psutil.process_iter(["pid", "cmdline"]):
            cmdline = proc.info.get("cmdline") or []
            if str(KEEPER) in cmdline and "--trial" in cmdline:
                out = Path(cmdline[cmdline.index("--trial") + 1])
            elif len(cmdline) >= 2 and cmdline[1] == str(HARNESS) and "--out" in cmdline:
                out = Path(cmdline[cmdline.index("--out") + 1])  # an unsandboxed harness whose keeper died
            else:
                continue
            if not out.resolve().is_relative_to(self.workspace):
                continue
            name = f"{out.parent.parent.name}/{out.name}"  # runs/<run>/trials/<n>
            if name in keep:
                continue
            with contextlib.suppress(psutil.Error):
                for child in proc.children(recursive=True):
                    child.kill()
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                continue
            if name not in removed:
                removed.append(name)
        return removed
