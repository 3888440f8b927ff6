"""One run per commit and script at a time: a lock per (source, commit, script) that dies with its holder.

A second ``mlops run`` (or Jenkins job) of the same commit and script while another process works on it
finds the lock held and says so (:class:`~mlops.errors.RunInProgress`, exit 3) before it writes anything:
no run, no trial, no report. The lock is ``flock`` on a file in the workspace (``locks/<key>.lock``): the
kernel lets go of it when its holder exits, however it ends (``kill -9`` included), so a dead holder never
blocks the next command, and job 6 (``monitor/watch.py``) takes over a run whose holder died as before.
The holder writes its process id and command line into the file: that is what the second one reports.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops.errors import RunInProgress


@dataclass(frozen=True)
class Holder:
    """Who holds a run's lock, as it wrote itself into the lock's file."""

    pid: int | None
    command: str
    since: float | None

    def describe(self) -> str:
        pid = f"process {self.pid}" if self.pid else "another process"
        since = f", since {time.strftime('%H:%M:%S', time.localtime(self.since))}" if self.since else ""
        return f"{pid} ({self.command}{since})" if self.command else f"{pid}{since[1:]}"


def key(source: str, commit: str, script: str) -> str:
    return hashlib.sha256(f"{source}\0{commit}\0{script}".encode()).hexdigest()[:24]


class RunLocks:
    """The run locks one process holds, in the workspace's ``locks/`` folder, kept until it ends (or
    :meth:`release_all`)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._held: dict[str, int] = {}

    def holds(self, name: str) -> bool:
        return name in self._held

    def hold(self, name: str) -> Holder | None:
        """Take the lock ``name`` (see :func:`key`); None when this process holds it now, or who holds it."""
        if name in self._held:
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{name}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            os.close(fd)
            return holder
        me = {"pid": os.getpid(), "since": time.time(), "command": " ".join(["mlops", *sys.argv[1:]])[:300]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        self._held[name] = fd
        return None

    def hold_or_refuse(self, name: str, what: str, follow: str) -> None:
        """Take the lock ``name``, or raise RunInProgress saying ``what`` is in progress in which process
        and how to ``follow`` it."""
        holder = self.hold(name)
        if holder is not None:
            raise RunInProgress(
                f"{what} is in progress in {holder.describe()}: follow it with `{follow}`, or wait for it "
                "(one run per commit and script at a time; nothing was written)"
            )

    def release(self, name: str) -> None:
        fd = self._held.pop(name, None)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def release_all(self) -> None:
        for fd in self._held.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._held.clear()


def _read(fd: int) -> Holder:
    data: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        loaded = json.loads(os.pread(fd, 4096, 0) or b"{}")
        data = loaded if isinstance(loaded, dict) else {}
    pid = data.get("pid")
    since = data.get("since")
    return Holder(
        pid if isinstance(pid, int) else None,
        str(data.get("command") or ""),
        float(since) if isinstance(since, int | float) else None,
    )
