"""What the local runtime watches while a trial runs, and how it says the trial ended.

Its time, from its start. Its memory, on every process of its sandbox (its PID namespace keeps even a
double-forked grandchild inside the keeper's tree) plus what its ``/dev/shm`` holds (and its ``/tmp`` when
that is a memory file system), because an address-space rlimit breaks TensorFlow, which reserves far more
virtual memory than it uses. The resident sizes are summed first; only when that sum is over the limit are
the processes' proportional sizes read (slower), so that pages a fork shares with its parent are counted
once: a fork storm is not an ``oom``. Its disk: a full quota file system (:mod:`diskquota`), or the scan.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from mlops.domain import EndReason
from mlops.runtime import diskquota
from mlops.runtime.base import Outcome, TrialSpec
from mlops.runtime.cgroup import TrialGroup
from mlops.trial_records import said_exit_code

HARNESS = Path(__file__).resolve().parent.parent.parent / "mlops_harness"  # run as `python <folder> ...`
MB = 1024 * 1024
PSS_S = 2.0  # proportional sizes cost a walk of every process's pages: read no more often than this


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
    group: TrialGroup | None = None  # its processes' own control group (None: RLIMIT_NPROC, per user)
    quota: diskquota.DiskQuota | None = None  # its disk quota
    mounted: bool = False  # the quota is a file system of its own (else: scanned)
    scanned: float = 0.0  # when its folder was last scanned (the fallback)
    measured: tuple[float, float] = (0.0, 0.0)  # when its proportional sizes were last read, and their sum
    detail: str = ""  # what the limit that stopped it found

    @property
    def data(self) -> dict[str, Any]:
        return {
            "runtime": "local",
            "pid": self.pid,
            "create_time": self.create_time,
            "started": self.started,
            "cgroup": self.group.name if self.group else None,
            "mounted": self.mounted,
        }


def tree(handle: LocalHandle) -> list[psutil.Process]:
    """Every process the keeper started, down to the last grandchild (the sandbox keeps them all)."""
    try:
        return list(psutil.Process(handle.pid).children(recursive=True))
    except psutil.Error:
        return []


def is_harness(proc: psutil.Process) -> bool:
    try:
        cmdline = proc.cmdline()
    except psutil.Error:
        return False
    return len(cmdline) >= 2 and cmdline[1] == str(HARNESS)


def _in_memory_folders(handle: LocalHandle, procs: list[psutil.Process]) -> int:
    """What the sandbox's memory file systems hold: /dev/shm, and /tmp unless it is on the quota's."""
    inside = [p for p in procs if is_harness(p)]
    if not inside:
        return 0
    total = 0
    root = f"/proc/{inside[0].pid}/root"
    for folder in ("dev/shm",) if handle.mounted else ("tmp", "dev/shm"):
        with contextlib.suppress(OSError):
            fs = os.statvfs(f"{root}/{folder}")
            total += (fs.f_blocks - fs.f_bfree) * fs.f_frsize
    return total


def memory_mb(handle: LocalHandle, sandboxed: bool, limit_mb: float | None = None) -> float:
    """The trial's memory in MB: resident sizes summed, or, when that is over ``limit_mb``, proportional
    sizes (a page several processes share is counted once in all), read again every PSS_S at most."""
    procs = tree(handle)
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    if limit_mb is not None and total / MB > limit_mb and len(procs) > 1:
        at, pss = handle.measured
        if time.monotonic() - at > PSS_S:
            pss = 0
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    pss += proc.memory_full_info().pss
            handle.measured = (time.monotonic(), pss)
        total = int(pss)
    if sandboxed:
        total += _in_memory_folders(handle, procs)
    return total / MB


def over_disk(handle: LocalHandle) -> str | None:
    """How the trial is over its disk quota, or None (the scan: every diskquota.SCAN_S)."""
    if handle.quota is None:
        return None
    if handle.mounted:
        return diskquota.full(handle.spec.trial_dir, handle.quota)
    if time.monotonic() - handle.scanned < diskquota.SCAN_S:
        return None
    handle.scanned = time.monotonic()
    return diskquota.scan(handle.spec.trial_dir, handle.quota)


def over_limit(handle: LocalHandle, sandboxed: bool) -> tuple[EndReason, str] | None:
    """The limit the trial is over now, and what was found; None while it is within them all."""
    limits = handle.spec.limits
    if limits.timeout_s is not None and time.time() - handle.started > limits.timeout_s:
        return EndReason.TIMEOUT, f"stopped after {limits.timeout_s:g} s"
    if limits.memory_mb is not None and memory_mb(handle, sandboxed, limits.memory_mb) > limits.memory_mb:
        return EndReason.OOM, f"over {limits.memory_mb} MB"
    disk = over_disk(handle)
    if disk is not None:
        return EndReason.DISK, disk
    return None


def outcome_of(handle: LocalHandle, duration: float) -> Outcome:
    """How the launch ended, once its keeper has."""
    if handle.stop_reason is not None:
        return Outcome(handle.stop_reason, None, None, duration, handle.detail)
    if handle.process is not None:
        code = handle.process.returncode
        if code < 0:
            return Outcome(EndReason.SIGNAL, None, -code, duration, "the keeper was killed")
        if code >= 128:  # the keeper reports a training killed by signal N as 128 + N
            return Outcome(EndReason.SIGNAL, None, code - 128, duration)
        return Outcome(EndReason.EXITED, code, None, duration)
    # Attached to a keeper we did not start: its exit status is lost to us; the harness's file says.
    code = said_exit_code(handle.spec.trial_dir)  # the harness's outcome.json, checked by the reader
    if code is not None:
        return Outcome(EndReason.EXITED, code, None, duration)
    return Outcome(EndReason.SIGNAL, None, None, duration, "ended without writing its outcome")


def said_of_processes(handle: LocalHandle, outcome: Outcome) -> Outcome:
    """A failed launch whose forks were refused for its process limit says so; one that failed on a full
    quota is a ``disk`` end."""
    if outcome.ok or outcome.reason is not EndReason.EXITED:
        return outcome
    if handle.quota is not None and handle.mounted:
        full = diskquota.full(handle.spec.trial_dir, handle.quota)
        if full is not None:
            return Outcome(EndReason.DISK, None, None, outcome.duration_s, full)
    refused = handle.group.refused() if handle.group else 0
    if refused and handle.spec.limits.pids:
        said = f"{refused} fork(s) or thread(s) refused at its limit of {handle.spec.limits.pids} (--pids)"
        return Outcome(outcome.reason, outcome.exit_code, outcome.signal, outcome.duration_s, said)
    return outcome
