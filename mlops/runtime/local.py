"""The local runtime: one process group per trial on this machine, with a time and a memory limit.

The trial's output goes straight to its log file, not through a pipe to us, so the training survives the
orchestrator being killed and a restarted orchestrator can attach to it again by its process id.
The memory limit is watched from here (the resident memory of the whole process group), because an
address-space rlimit breaks TensorFlow, which reserves far more virtual memory than it uses.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from mlops.domain import EndReason
from mlops.envsafe import scrubbed
from mlops.errors import TrialLaunchError
from mlops.runtime.base import Outcome, TrialSpec, follow_file
from mlops_harness.protocol import LOG_FILE, OUTCOME_FILE, read_json

HARNESS = Path(__file__).resolve().parent.parent.parent / "mlops_harness"  # run as `python <folder> ...`
POLL_S = 0.25
STOP_GRACE_S = 5.0


@dataclass
class LocalHandle:
    spec: TrialSpec
    pid: int
    create_time: float
    started: float
    process: subprocess.Popen[bytes] | None = None  # None when attached from another orchestrator
    log_offset: int = 0  # where this launch's output starts in the trial's log
    stop_reason: EndReason | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def data(self) -> dict[str, Any]:
        return {"runtime": "local", "pid": self.pid, "create_time": self.create_time, "started": self.started}


class LocalRuntime:
    """Runs the harness with this interpreter, in the trial's own process group."""

    name = "local"

    def __init__(self, workspace: Path | None = None, python: str | None = None) -> None:
        self.workspace = workspace.resolve() if workspace else None
        self.python = python or sys.executable
        self._handles: dict[str, LocalHandle] = {}

    def run(self, spec: TrialSpec) -> LocalHandle:
        spec.trial_dir.mkdir(parents=True, exist_ok=True)
        log_path = spec.trial_dir / LOG_FILE
        log_offset = log_path.stat().st_size if log_path.exists() else 0
        env = scrubbed(os.environ)  # the user's code never sees mail passwords, tokens, webhook URLs
        env.update(
            PYTHONUNBUFFERED="1",
            MPLBACKEND="Agg",
            TF_CPP_MIN_LOG_LEVEL=env.get("TF_CPP_MIN_LOG_LEVEL", "2"),
        )
        env.update(spec.env)
        if spec.limits.cpus:
            threads = str(max(1, int(spec.limits.cpus)))
            env.update(OMP_NUM_THREADS=threads, TF_NUM_INTRAOP_THREADS=threads)
        command = [spec.python or self.python, str(HARNESS)] + spec.harness_args(
            code=str(spec.code_dir), source=str(spec.source_file), out=str(spec.trial_dir)
        )
        try:
            with log_path.open("ab") as log:
                process = subprocess.Popen(  # noqa: S603 (the command is ours; the script runs inside it)
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=spec.trial_dir,
                    start_new_session=True,  # its own process group: killed as one, survives us
                )
        except OSError as e:
            raise TrialLaunchError(spec.name, str(e)) from e
        try:
            create_time = psutil.Process(process.pid).create_time()
        except psutil.Error:
            create_time = 0.0
        handle = LocalHandle(spec, process.pid, create_time, time.time(), process, log_offset=log_offset)
        self._handles[spec.name] = handle
        return handle

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

    def _group_rss_mb(self, handle: LocalHandle) -> float:
        total = 0
        try:
            root = psutil.Process(handle.pid)
            for proc in [root, *root.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    continue
        except psutil.Error:
            return 0.0
        return total / (1024 * 1024)

    def wait(self, handle: LocalHandle) -> Outcome:
        limits = handle.spec.limits
        while self._alive(handle):
            elapsed = time.time() - handle.started
            if limits.timeout_s is not None and elapsed > limits.timeout_s:
                self._kill(handle, EndReason.TIMEOUT)
            elif limits.memory_mb is not None and self._group_rss_mb(handle) > limits.memory_mb:
                self._kill(handle, EndReason.OOM)
            time.sleep(POLL_S)
        duration = time.time() - handle.started
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
                return Outcome(EndReason.SIGNAL, None, -code, duration)
            return Outcome(EndReason.EXITED, code, None, duration)
        # Attached to a process we did not start: its exit status is lost to us; the harness's file says.
        outcome = read_json(handle.spec.trial_dir / OUTCOME_FILE)
        if outcome is not None and "exit_code" in outcome:
            return Outcome(EndReason.EXITED, int(outcome["exit_code"]), None, duration)
        return Outcome(EndReason.SIGNAL, None, None, duration, "ended without writing its outcome")

    def _kill(self, handle: LocalHandle, reason: EndReason) -> None:
        with handle.lock:
            if handle.stop_reason is None:
                handle.stop_reason = reason
        try:
            os.killpg(handle.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.time() + STOP_GRACE_S
        while time.time() < deadline and self._alive(handle):
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(handle.pid, signal.SIGKILL)
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
        """Harness processes of this workspace whose trial is not in ``keep`` (strays of a crash) are ended."""
        removed: list[str] = []
        if self.workspace is None:
            return removed
        for proc in psutil.process_iter(["pid", "cmdline"]):
            cmdline = proc.info.get("cmdline") or []
            if len(cmdline) < 2 or cmdline[1] != str(HARNESS) or "--out" not in cmdline:
                continue
            out = Path(cmdline[cmdline.index("--out") + 1]).resolve()
            if not out.is_relative_to(self.workspace):
                continue
            name = f"{out.parent.parent.name}/{out.name}"  # runs/<run>/trials/<n>
            if name in keep:
                continue
            try:
                os.killpg(proc.pid, signal.SIGKILL)
                removed.append(name)
            except (ProcessLookupError, PermissionError):
                continue
        return removed
