"""The local runtime: each trial in a bubblewrap sandbox on this machine, within limits of its own.

A trial is started by a keeper (``keeper.py``), a small process in a session of its own that writes the
trial's output to its log file (secrets masked, capped), so the training survives the orchestrator being
killed and a restarted orchestrator attaches to it again by the keeper's process id. The keeper runs the
harness inside the sandbox :mod:`mlops.runtime.sandbox` describes (``--unsandboxed``: as a plain process),
set up as :mod:`mlops.runtime.local_setup` says. Its limits are its own: its processes and threads counted
in a control group of its own (:mod:`mlops.runtime.cgroup`), what it writes in a file system of its quota's
size (:mod:`mlops.runtime.diskquota`), its time and memory watched from here
(:mod:`mlops.runtime.local_watch`).
"""

from __future__ import annotations

import contextlib
import marshal
import math
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import psutil

from mlops.domain import EndReason
from mlops.errors import TrialLaunchError
from mlops.layout import WorkspaceLayout
from mlops.runtime import cgroup, diskquota
from mlops.runtime.ahead import StartedAhead, Waiting, given_source, put_back_source
from mlops.runtime.author_folders import with_author_folders
from mlops.runtime.base import Capabilities, Outcome, TrialSpec, follow_file, open_log
from mlops.runtime.data import with_data
from mlops.runtime.local_setup import LocalSetup
from mlops.runtime.local_watch import (
    HARNESS,
    LocalHandle,
    outcome_of,
    over_limit,
    said_of_processes,
    tree,
)
from mlops_harness.protocol import GO_FILE, LOG_FILE, WORK_DIR

KEEPER = Path(__file__).resolve().parent / "keeper.py"
POLL_S = 0.25
STOP_GRACE_S = 5.0


class LocalRuntime(LocalSetup):
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
        super().__init__(workspace, python, sandboxed=sandboxed, caller_env=caller_env)
        self._handles: dict[str, LocalHandle] = {}
        self._launching = threading.Lock()  # parallel trials choose their cores one after the other
        self._ahead = StartedAhead()  # harnesses of later trials, waiting for them (see prestart)

    def run(self, spec: TrialSpec) -> LocalHandle:
        handle = self._given(spec)
        if handle is not None:
            return handle
        return self._launch(spec)

    def _launch(self, spec: TrialSpec, ahead: bool = False) -> LocalHandle:
        spec.trial_dir.mkdir(parents=True, exist_ok=True)
        (spec.trial_dir / GO_FILE).unlink(missing_ok=True)  # an earlier launch's
        spec = with_data(spec, mounted=self.sandboxed)  # unsandboxed: data: paths rewritten in a copy
        if self.sandboxed:  # the author's folders the script writes to, from the trial's outside/
            spec = with_author_folders(spec)
        quota, mounted = self._quota(spec)
        try:
            log_fd = open_log(spec.trial_dir / LOG_FILE)
        except OSError as e:
            diskquota.release(spec.trial_dir.resolve())
            raise TrialLaunchError(spec.name, str(e)) from e
        try:
            log_offset = os.fstat(log_fd).st_size
            cache = self.cache_dir(spec)
            self._hand_over(spec, cache)
            job = self._job(spec, cache, ahead)
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
                group = self._group(spec, process.pid)  # before the keeper reads its job: all inside
                job.update(self._job_limits(spec, group, mounted))
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
                    group=group,
                    quota=quota,
                    mounted=mounted,
                )
                if not ahead:
                    self._handles[spec.name] = handle
        except OSError as e:
            diskquota.release(spec.trial_dir.resolve())
            raise TrialLaunchError(spec.name, str(e)) from e
        finally:
            os.close(log_fd)
        return handle

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(starts_ahead=self.sandboxed, python=self.python, sandboxed=self.sandboxed)

    def prepare(self, images: list[str], say: Callable[[str], None]) -> None:
        """Nothing: a local trial runs on an interpreter, not an image."""

    # -- starting the next trial ahead ----------------------------------------------------------------

    def prestart(self, spec: TrialSpec | None) -> None:
        """Start the harness of a later trial now, so that its interpreter and libraries load while the
        current trial trains (see ahead.py); ``run`` of an equal spec gives it the trial. Sandboxed only:
        its libraries load before the harness's guards are in place, which the sandbox makes harmless.
        ``None``: the trials waiting are not needed (the run is over); a load check waiting stays until
        it is given its model or :meth:`end_ahead` ends it. One already waiting with an equal spec stays."""
        if spec is None:
            for waiting in self._ahead.clear():
                self._drop(waiting)
            return
        if not self.sandboxed:
            return
        if not spec.source_file.resolve().is_relative_to(spec.trial_dir.resolve()):
            return  # a source outside the trial folder must exist to be mounted
        same = self._ahead.get(spec)
        if same is not None and same.spec == spec and self._alive(same.handle):
            return
        earlier = self._ahead.pop(spec)
        if earlier is not None:
            self._drop(earlier)
        try:
            handle = self._launch(spec, ahead=True)
        except TrialLaunchError:
            return  # the trial is started as usual when it comes
        self._ahead.add(Waiting(spec, handle))

    def end_ahead(self, spec: TrialSpec) -> None:
        """End the harness started ahead for ``spec``'s launch, if it is still waiting."""
        waiting = self._ahead.pop(spec)
        if waiting is not None:
            self._drop(waiting)

    def _given(self, spec: TrialSpec) -> LocalHandle | None:
        """The harness started ahead for exactly this spec, given its trial; None when there is none, or
        it was started for another spec (then it is ended), or went away."""
        waiting, passed = self._ahead.take(spec)
        for other in passed:
            self._drop(other)
        if waiting is None:
            return None
        handle: LocalHandle = waiting.handle
        source = given_source(spec) if waiting.spec == spec and self._alive(handle) else None
        if source is None:
            self._drop(waiting)
            return None
        handle.source = source
        (spec.trial_dir / GO_FILE).write_bytes(b"")
        handle.started = time.time()
        self._handles[spec.name] = handle
        return handle

    def _drop(self, waiting: Waiting) -> None:
        """End a harness started ahead that will not be given its trial; its folder goes too, unless the
        trial was recorded meanwhile (a trial's source is written before it is recorded)."""
        self._kill(waiting.handle, EndReason.SIGNAL)
        self._let_go(waiting.handle)
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
        group = cgroup.find(str(data.get("cgroup") or ""))
        try:
            proc = psutil.Process(pid)
            if abs(proc.create_time() - float(data.get("create_time", 0))) > 1.0:
                raise psutil.NoSuchProcess(pid)  # the pid was reused by another program
            if proc.status() == psutil.STATUS_ZOMBIE:
                raise psutil.NoSuchProcess(pid)
        except psutil.Error:
            if group is not None:
                group.remove()
            diskquota.release(spec.trial_dir.resolve())  # its files where they are read from
            return None
        log_path = spec.trial_dir / LOG_FILE
        offset = log_path.stat().st_size if log_path.exists() else 0
        started = float(data.get("started", time.time()))
        handle = LocalHandle(spec, pid, float(data["create_time"]), started, log_offset=offset, group=group)
        limits = spec.limits
        if limits.disk_mb is not None or limits.disk_files is not None:
            handle.quota = diskquota.DiskQuota(limits.disk_mb or 1 << 30, limits.disk_files or 1 << 31)
            handle.mounted = diskquota.mounted(spec.trial_dir.resolve())
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

    def wait(self, handle: LocalHandle) -> Outcome:
        while self._alive(handle):
            over = over_limit(handle, self.sandboxed)
            if over is not None:
                handle.detail = handle.detail or over[1]
                self._kill(handle, over[0])
            self._pause(handle)
        duration = time.time() - handle.started
        if handle.source is not None:
            put_back_source(handle.spec, handle.source)
        outcome = said_of_processes(handle, outcome_of(handle, duration))
        if outcome.reason is EndReason.DISK:
            handle.stop_reason = EndReason.DISK  # what went over is not copied back (see _let_go)
        if handle.group is not None:
            handle.group.remove()
        return outcome

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
        procs = tree(handle)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(handle.pid, signal.SIGTERM)  # the keeper ends the training and writes the log's tail
        deadline = time.time() + STOP_GRACE_S
        while time.time() < deadline and self._alive(handle):
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(handle.pid, signal.SIGKILL)
        for proc in procs:  # unsandboxed, a child may have left the keeper's session
            with contextlib.suppress(psutil.Error):
                proc.kill()
        if handle.group is not None:
            handle.group.kill()
        if handle.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                handle.process.wait(timeout=5)

    def stop(self, handle: LocalHandle) -> None:
        self._kill(handle, EndReason.SIGNAL)

    def remove(self, handle: LocalHandle) -> None:
        self._handles.pop(handle.spec.name, None)
        if handle.process is not None and handle.process.poll() is None:
            self._kill(handle, EndReason.SIGNAL)
        self._let_go(handle)

    def _let_go(self, handle: LocalHandle) -> None:
        """Its control group removed, its folder plain again (see diskquota.release): what went over a
        disk quota is not copied back (its work/ folder, said in its log)."""
        if handle.group is not None:
            handle.group.remove()
        trial_dir = handle.spec.trial_dir.resolve()
        over = handle.stop_reason is EndReason.DISK
        left = diskquota.release(trial_dir, frozenset({WORK_DIR}) if over else frozenset())
        with contextlib.suppress(OSError), (trial_dir / LOG_FILE).open("a") as log:
            if over:
                log.write(f"[mlops] its {WORK_DIR}/ folder went over the disk quota and was not kept\n")
            for path in left:
                log.write(f"[mlops] not copied back (not a plain file of its own): {path}\n")

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
        self._let_go_of_leftovers(keep)
        return removed

    def _let_go_of_leftovers(self, keep: set[str]) -> None:
        """The control groups and quota file systems a crash left, of trials not in ``keep``."""
        for group in cgroup.leftovers(f"{self._prefix}-"):
            if not group.processes():
                group.remove()
        assert self.workspace is not None
        for image in WorkspaceLayout(self.workspace).trial_entries(".*.disk"):
            trial_dir = image.parent / image.name[1 : -len(".disk")]
            if f"{trial_dir.parent.parent.name}/{trial_dir.name}" not in keep:
                diskquota.release(trial_dir)
