"""The push queue: pushes wait in the workspace (one JSON file per push, written atomically), so pushes that
arrive while a run is going wait their turn and survive a restart, even ``kill -9``; one worker takes them
one at a time. A push is done when its run has been recorded: a commit queued or run before is not queued
again, but one whose pull failed (the failure is an event in the ledger) is retried when it is pushed or
delivered again. ``watch`` polls a branch and queues its new commits the same way.
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlops.config import child_env
from mlops.errors import LedgerUnavailable, PullError, RuntimeUnavailable
from mlops.layout import WorkspaceLayout
from mlops.pull import GIT_PROTOCOLS
from mlops_harness.protocol import write_atomic

log = logging.getLogger("mlops.webhook")
Runner = Callable[[str, str, str], None]  # (source, ref, commit)
# Failures after which the push has no recorded run and is tried again when it comes again.
RETRIED = (PullError, RuntimeUnavailable, LedgerUnavailable, OSError)


@dataclass(frozen=True)
class Push:
    source: str
    ref: str
    commit: str


class PushQueue:
    """A durable first-in first-out queue of pushes in ``<workspace>/queue``; each commit once."""

    def __init__(self, workspace: Path) -> None:
        self.folder = WorkspaceLayout(workspace).queue
        self.folder.mkdir(parents=True, exist_ok=True)
        self.seen_file = WorkspaceLayout(workspace).queue_seen
        self.lock = threading.Lock()
        self.ready = threading.Condition(self.lock)

    def _seen(self) -> set[str]:
        try:
            return set(json.loads(self.seen_file.read_text()))
        except (OSError, ValueError):
            return set()

    def put(self, push: Push) -> bool:
        """Queue a push; False when that commit is queued now or its run was recorded before."""
        with self.lock:
            if push.commit in self._seen() or any(p.commit == push.commit for _, p in self._items()):
                return False
            name = f"{time.time_ns()}-{push.commit[:12]}.json"
            write_atomic(self.folder / name, json.dumps(push.__dict__))
            self.ready.notify_all()
            return True

    def _items(self) -> list[tuple[Path, Push]]:
        items = []
        for path in self.pending():
            with contextlib.suppress(OSError, ValueError, TypeError):
                items.append((path, Push(**json.loads(path.read_text()))))
        return items

    def pending(self) -> list[Path]:
        return sorted(p for p in self.folder.glob("*.json") if p.name != self.seen_file.name)

    def take(self, timeout: float | None = None) -> tuple[Path, Push] | None:
        with self.lock:
            if not self.pending():
                self.ready.wait(timeout)
            items = self.pending()
            if not items:
                return None
            path = items[0]
            return path, Push(**json.loads(path.read_text()))

    def done(self, path: Path, push: Push, recorded: bool = True) -> None:
        """The push has been taken; ``recorded``: its run is in the ledger, so it is never queued again."""
        with self.lock:
            if recorded:
                seen = self._seen() | {push.commit}
                write_atomic(self.seen_file, json.dumps(sorted(seen)))
            path.unlink(missing_ok=True)


class Worker(threading.Thread):
    """Runs queued pushes one at a time; a run that fails is logged and the next push goes on."""

    def __init__(self, queue: PushQueue, runner: Runner) -> None:
        super().__init__(daemon=True, name="mlops-push-worker")
        self.queue = queue
        self.runner = runner
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            item = self.queue.take(timeout=0.5)
            if item is None:
                continue
            path, push = item
            recorded = True
            try:
                self.runner(push.source, push.ref, push.commit)
            except RETRIED as e:
                recorded = False
                log.error(f"{push.source} at {push.commit[:12]} not run ({e}); it runs when pushed again")
            except Exception as e:  # noqa: BLE001 (one bad push must not stop the queue)
                log.error(f"run of {push.source} at {push.commit[:12]} failed: {e}")
            self.queue.done(path, push, recorded)


def remote_head(source: str, branch: str) -> str | None:
    done = subprocess.run(  # noqa: S603
        ["git", "ls-remote", "--", source, f"refs/heads/{branch}"],
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env(GIT_TERMINAL_PROMPT="0", GIT_ALLOW_PROTOCOL=GIT_PROTOCOLS),
    )
    if done.returncode != 0:
        log.warning(f"git ls-remote {source}: {done.stderr.strip()[-200:]}")
        return None
    line = done.stdout.split()
    return line[0] if line else None


def watch(source: str, branch: str, queue: PushQueue, interval_s: float, stop: threading.Event) -> None:
    """Poll the branch's head; each new commit is queued like a push."""
    while not stop.is_set():
        head = remote_head(source, branch)
        if head and queue.put(Push(source, branch, head)):
            log.info(f"new commit on {branch}: {head[:12]}")
        stop.wait(interval_s)
