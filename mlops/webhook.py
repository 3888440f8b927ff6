"""Push triggers without Jenkins: a GitHub webhook receiver (``mlops serve``) and a poller (``mlops watch``).

Pushes go into a queue kept in the workspace (one JSON file per push, written atomically), so pushes that
arrive while a run is going wait their turn and survive a restart; one worker takes them one at a time.
A commit that was queued or run before is never queued again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from mlops.errors import ConfigError
from mlops_harness.protocol import write_atomic

log = logging.getLogger("mlops.webhook")
MAX_BODY = 1024 * 1024
Runner = Callable[[str, str, str], None]  # (source, ref, commit)


@dataclass(frozen=True)
class Push:
    source: str
    ref: str
    commit: str


class PushQueue:
    """A durable first-in first-out queue of pushes in ``<workspace>/queue``; each commit once."""

    def __init__(self, workspace: Path) -> None:
        self.folder = workspace / "queue"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.seen_file = self.folder / "seen.json"
        self.lock = threading.Lock()
        self.ready = threading.Condition(self.lock)

    def _seen(self) -> set[str]:
        try:
            return set(json.loads(self.seen_file.read_text()))
        except (OSError, ValueError):
            return set()

    def put(self, push: Push) -> bool:
        """Queue a push; False when that commit was queued (or run) before."""
        with self.lock:
            seen = self._seen()
            if push.commit in seen:
                return False
            name = f"{time.time_ns()}-{push.commit[:12]}.json"
            write_atomic(self.folder / name, json.dumps(push.__dict__))
            seen.add(push.commit)
            write_atomic(self.seen_file, json.dumps(sorted(seen)))
            self.ready.notify_all()
            return True

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

    def done(self, path: Path) -> None:
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
            try:
                self.runner(push.source, push.ref, push.commit)
            except Exception as e:  # noqa: BLE001 (one bad push must not stop the queue)
                log.error(f"run of {push.source} at {push.commit[:12]} failed: {e}")
            self.queue.done(path)


def signature_ok(secret: bytes, body: bytes, header: str | None) -> bool:
    if not header or not header.startswith("sha256="):
        return False
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


class GitHubHook(BaseHTTPRequestHandler):
    """POST /hooks/github: a push to the watched branch is queued; everything else is refused or ignored."""

    secret: bytes = b""
    branch: str = "main"
    queue: PushQueue
    max_body: int = MAX_BODY
    timeout = 15  # seconds a client may take to send its request: a stalled one does not hold a thread

    def _reply(self, status: HTTPStatus, message: str) -> None:
        body = json.dumps({"message": message}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802
        if self.path.rstrip("/") != "/hooks/github":
            return self._reply(HTTPStatus.NOT_FOUND, "POST GitHub push events to /hooks/github")
        declared = self.headers.get("Content-Length") or "0"
        if not declared.isdigit():
            return self._reply(HTTPStatus.BAD_REQUEST, f"bad Content-Length {declared[:20]!r}")
        length = int(declared)
        if length > self.max_body:
            return self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {self.max_body} bytes")
        body = self.rfile.read(length)
        if not signature_ok(self.secret, body, self.headers.get("X-Hub-Signature-256")):
            return self._reply(HTTPStatus.UNAUTHORIZED, "missing or bad X-Hub-Signature-256")
        event = self.headers.get("X-GitHub-Event", "")
        if event == "ping":
            return self._reply(HTTPStatus.OK, "pong")
        if event != "push":
            return self._reply(HTTPStatus.ACCEPTED, f"ignored: event {event!r} is not a push")
        try:
            payload: dict[str, Any] = json.loads(body)
            ref, commit = payload["ref"], payload["after"]
            source = payload["repository"]["clone_url"]
        except (ValueError, KeyError, TypeError):
            return self._reply(HTTPStatus.BAD_REQUEST, "not a GitHub push payload")
        if ref != f"refs/heads/{self.branch}":
            return self._reply(HTTPStatus.ACCEPTED, f"ignored: a push to {ref}, not to {self.branch}")
        if set(commit) == {"0"}:
            return self._reply(HTTPStatus.ACCEPTED, "ignored: the branch was deleted")
        if not self.queue.put(Push(source, self.branch, commit)):
            return self._reply(HTTPStatus.OK, f"commit {commit[:12]} was queued before")
        log.info(f"queued {source} at {commit[:12]}")
        return self._reply(HTTPStatus.ACCEPTED, f"queued {commit[:12]}")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.info("%s %s", self.address_string(), format % args)


def make_server(
    host: str, port: int, secret: str | None, branch: str, queue: PushQueue
) -> ThreadingHTTPServer:
    if not secret:
        raise ConfigError(
            "mlops serve needs the webhook's shared secret in MLOPS_WEBHOOK_SECRET "
            "(the same one as in GitHub's webhook settings)"
        )
    handler = type("Hook", (GitHubHook,), {"secret": secret.encode(), "branch": branch, "queue": queue})
    return ThreadingHTTPServer((host, port), handler)


def remote_head(source: str, branch: str) -> str | None:
    done = subprocess.run(
        ["git", "ls-remote", source, f"refs/heads/{branch}"],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, GIT_TERMINAL_PROMPT="0"),
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
