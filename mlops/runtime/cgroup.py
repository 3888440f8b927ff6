"""A trial's own process limit: a control group of the ``pids`` controller per launch, with ``pids.max``.

The limit counts the trial's processes and threads alone. ``RLIMIT_NPROC``, the other way to limit
processes, counts every process of a user on the machine: all trials run as ``nobody``, so one trial's fork
storm would leave the others unable to start a thread. The group is made where this process's own group is
(``<its group>/mlops/<name>``, cgroup v1's ``pids`` hierarchy or cgroup v2), so a trial never leaves the
limits its orchestrator is under; the runtime moves the keeper into it before the keeper starts the
training, and every process the training starts is born inside. When no group can be made (not root, no
``pids`` controller, a v2 group that does not delegate it), :func:`make` returns None and the runtime falls
back to ``RLIMIT_NPROC`` and says so.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")
OWN = Path("/proc/self/cgroup")
FOLDER = "mlops"  # under this process's own group: one child per launch
OVERHEAD = 3  # the keeper and bubblewrap's two processes, besides what the training may start


def _mount() -> tuple[Path, bool] | None:
    """Where the ``pids`` controller is mounted, and whether it is cgroup v2 (v1's own hierarchy first)."""
    try:
        lines = MOUNTINFO.read_text().splitlines()
    except OSError:
        return None
    v2: Path | None = None
    for line in lines:
        fields, _, after = line.partition(" - ")
        kind, _, options = (after.split(" ") + ["", "", ""])[:3]
        point = Path(fields.split(" ")[4])
        if kind == "cgroup" and "pids" in options.split(","):
            return point, False
        if kind == "cgroup2" and v2 is None:
            with contextlib.suppress(OSError):
                if "pids" in (point / "cgroup.controllers").read_text().split():
                    v2 = point
    return (v2, True) if v2 is not None else None


def _own(v2: bool) -> str:
    """This process's group in the hierarchy (``0::/path`` on v2, ``N:pids:/path`` on v1)."""
    for line in OWN.read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if (v2 and controllers == "") or (not v2 and "pids" in controllers.split(",")):
            return path.lstrip("/")
    return ""


def base() -> Path | None:
    """The folder trials' groups are made in, made (and, on v2, given the ``pids`` controller); None when
    it cannot be."""
    found = _mount()
    if found is None:
        return None
    point, v2 = found
    try:
        own = point / _own(v2)
        folder = own / FOLDER
        folder.mkdir(exist_ok=True)
        if v2:  # the controller has to be handed down to the children, level by level
            (folder / "cgroup.subtree_control").write_text("+pids")
        return folder
    except OSError:
        return None


@dataclass(frozen=True)
class TrialGroup:
    """One launch's group: ``folder`` is its cgroup folder."""

    folder: Path

    @property
    def name(self) -> str:
        return self.folder.name

    def add(self, pid: int) -> None:
        (self.folder / "cgroup.procs").write_text(str(pid))

    def processes(self) -> list[int]:
        try:
            return [int(p) for p in (self.folder / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return []

    def refused(self) -> int:
        """How many times a fork or a new thread was refused for the limit (``pids.events``)."""
        try:
            for line in (self.folder / "pids.events").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "max":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def kill(self) -> None:
        """SIGKILL every process in the group (the ones that escaped the keeper's session too)."""
        for pid in self.processes():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)

    def remove(self, within_s: float = 5.0) -> bool:
        """Kill what is left and remove the group; False when it is still not empty after ``within_s``."""
        deadline = time.monotonic() + within_s
        while True:
            self.kill()
            try:
                self.folder.rmdir()
                return True
            except FileNotFoundError:
                return True
            except OSError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.05)  # the killed processes are being reaped


def make(name: str, pids: int) -> TrialGroup | None:
    """A new group ``name`` whose processes and threads may number ``pids`` (plus the keeper's and
    bubblewrap's own); None when groups cannot be made here."""
    folder = base()
    if folder is None:
        return None
    group = TrialGroup(folder / name)
    try:
        group.folder.mkdir()
        (group.folder / "pids.max").write_text(str(pids + OVERHEAD))
    except FileExistsError:
        return group if (group.folder / "pids.max").exists() else None
    except OSError:
        with contextlib.suppress(OSError):
            group.folder.rmdir()
        return None
    return group


def find(name: str) -> TrialGroup | None:
    """The group ``name`` made earlier (perhaps by another orchestrator), or None."""
    folder = base()
    if folder is None or not name or "/" in name or name.startswith("."):
        return None
    group = TrialGroup(folder / name)
    return group if group.folder.is_dir() else None


def leftovers(prefix: str) -> list[TrialGroup]:
    """Groups whose name starts with ``prefix`` (a workspace's), for the cleanup of a crash."""
    folder = base()
    if folder is None:
        return []
    return [TrialGroup(p) for p in sorted(folder.iterdir()) if p.is_dir() and p.name.startswith(prefix)]
