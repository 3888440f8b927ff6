"""Push triggers without Jenkins: a GitHub webhook receiver (``mlops serve``) and a poller (``mlops watch``).

Pushes go into a queue kept in the workspace (one JSON file per push, written atomically), so pushes that
arrive while a run is going wait their turn and survive a restart; one worker takes them one at a time.
A push is done when its run has been recorded: a commit queued or run before is not queued again, but one
whose pull failed (the failure is an event in the ledger) is retried when it is pushed or delivered again.

Only signed pushes of repositories on the allow-list (``repositories`` in mlops.toml, by clone URL or
owner/name) are trained; a payload is checked field by field (400 names the field), never trusted.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from mlops.errors import ConfigError, LedgerUnavailable, PullError, RuntimeUnavailable
from mlops.pull import GIT_PROTOCOLS
from mlops_harness.protocol import write_atomic

log = logging.getLogger("mlops.webhook")
MAX_BODY = 1024 * 1024
Runner = Callable[[str, str, str], None]  # (source, ref, commit)
COMMIT_RE = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # SHA-1 or SHA-256
REMOTE_RE = re.compile(r"(https?|ssh|git)://[^\s]+|[\w.-]+@[\w.-]+:[^\s]+")
# Failures after which the push has no recorded run and is tried again when it comes again.
RETRIED = (PullError, RuntimeUnavailable, LedgerUnavailable, OSError)


def valid_ref(ref: str) -> bool:
    """A branch's full name as git check-ref-format allows it (refs/heads/..., no .., no control bytes)."""
    if not ref.startswith("refs/heads/") or len(ref) > 255 or ref.endswith(("/", ".", ".lock")):
        return False
    if any(c < " " or c in " ~^:?*[\\\x7f" for c in ref) or ".." in ref or "@{" in ref or "//" in ref:
        return False
    return all(part and not part.startswith(".") for part in ref.split("/"))


def _key(url: str) -> str:
    return url.strip().rstrip("/").removesuffix(".git").lower()


def allowed_source(repositories: Sequence[str], clone_url: str, full_name: str) -> str | None:
    """What to train for a push of ``clone_url`` (``full_name`` is owner/name), or None when the repository
    is not on the allow-list. A listed URL or path is trained as listed; a repository listed by name is
    trained from its clone URL only when that is a remote URL (never a local path or an option)."""
    for entry in repositories:
        if _key(entry) == _key(clone_url):
            return entry
    names = {_key(entry) for entry in repositories}
    if full_name and _key(full_name) in names and REMOTE_RE.fullmatch(clone_url):
        return clone_url
    return None


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
    repositories: tuple[str, ...] = ()
    fixed_source: str | None = None  # mlops serve SOURCE: every push trains SOURCE
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
        try:
            self._post()
        except Exception:  # noqa: BLE001 (an answer, never a dropped connection)
            log.exception("a webhook delivery could not be handled")
            with contextlib.suppress(OSError):
                self._reply(
                    HTTPStatus.INTERNAL_SERVER_ERROR, "the delivery could not be handled; see the log"
                )

    def _post(self) -> None:
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
            payload = json.loads(body)
        except ValueError:
            return self._reply(HTTPStatus.BAD_REQUEST, "not a GitHub push payload: the body is not JSON")
        problem, push = self._push_of(payload)
        if push is None:
            return self._reply(HTTPStatus.BAD_REQUEST, f"not a GitHub push payload: {problem}")
        ref, commit, repository = push
        if ref != f"refs/heads/{self.branch}":
            return self._reply(HTTPStatus.ACCEPTED, f"ignored: a push to {ref}, not to {self.branch}")
        if set(commit) == {"0"}:
            return self._reply(HTTPStatus.ACCEPTED, "ignored: the branch was deleted")
        clone_url, full_name = repository
        source = allowed_source(self.repositories, clone_url, full_name)
        if source is None and not (self.fixed_source and not self.repositories):
            shown = full_name or clone_url[:100]
            return self._reply(HTTPStatus.FORBIDDEN, f"{shown!r} is not in repositories (mlops.toml)")
        source = self.fixed_source or source or clone_url
        if not self.queue.put(Push(source, self.branch, commit)):
            return self._reply(HTTPStatus.OK, f"commit {commit[:12]} was queued before")
        log.info(f"queued {source} at {commit[:12]}")
        return self._reply(HTTPStatus.ACCEPTED, f"queued {commit[:12]}")

    @staticmethod
    def _push_of(payload: Any) -> tuple[str, tuple[str, str, tuple[str, str]] | None]:
        """(what is wrong, None) or ("", (ref, commit, (clone URL, owner/name))) of a push payload."""
        if not isinstance(payload, dict):
            return "not a JSON object", None
        ref, commit, repository = payload.get("ref"), payload.get("after"), payload.get("repository")
        if not isinstance(ref, str) or not valid_ref(ref):
            return "'ref' must be a branch (refs/heads/...)", None
        if not isinstance(commit, str) or not COMMIT_RE.fullmatch(commit):
            return "'after' must be a commit id (40 or 64 hexadecimal digits)", None
        if not isinstance(repository, dict) or not isinstance(repository.get("clone_url"), str):
            return "'repository.clone_url' must be a string", None
        full_name = repository.get("full_name")
        return "", (ref, commit, (repository["clone_url"], full_name if isinstance(full_name, str) else ""))

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.info("%s %s", self.address_string(), format % args)


def make_server(
    host: str,
    port: int,
    secret: str | None,
    branch: str,
    queue: PushQueue,
    repositories: Sequence[str] = (),
    fixed_source: str | None = None,
) -> ThreadingHTTPServer:
    """The webhook server. Pushes of ``repositories`` are trained (by clone URL or owner/name); with
    ``fixed_source`` (mlops serve SOURCE) every accepted push trains that source instead."""
    if not secret:
        raise ConfigError(
            "mlops serve needs the webhook's shared secret in MLOPS_WEBHOOK_SECRET "
            "(the same one as in GitHub's webhook settings)"
        )
    if not repositories and not fixed_source:
        raise ConfigError(
            "mlops serve trains only the repositories listed in mlops.toml "
            '(repositories = ["https://github.com/you/model.git"] or ["you/model"]), or the SOURCE given'
        )
    attributes = {
        "secret": secret.encode(),
        "branch": branch,
        "queue": queue,
        "repositories": tuple(repositories),
        "fixed_source": fixed_source,
    }
    return ThreadingHTTPServer((host, port), type("Hook", (GitHubHook,), attributes))


def remote_head(source: str, branch: str) -> str | None:
    done = subprocess.run(  # noqa: S603
        ["git", "ls-remote", "--", source, f"refs/heads/{branch}"],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_ALLOW_PROTOCOL=GIT_PROTOCOLS),
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
