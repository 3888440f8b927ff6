"""``mlops serve``: the GitHub webhook as an ASGI application on uvicorn, a server made for the internet.

Every connection is a socket on one event loop (not a thread each); a request's head and then its body must
each arrive within the request timeout (408), a body is read up to the limit and no further (413), open
connections are capped (503), and TLS is served when a certificate and its key are given. ``GET /healthz``
says whether the server and its push worker are up. What a delivery means is decided in
:mod:`mlops.webhook.github`; the queue it feeds is :mod:`mlops.webhook.pushes`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

import uvicorn

from mlops.errors import ConfigError
from mlops.webhook.connections import guarded_protocol
from mlops.webhook.github import Answer, GitHubHook
from mlops.webhook.limits import Limits
from mlops.webhook.pushes import PushQueue

log = logging.getLogger("mlops.webhook")
HOOK_PATH = "/hooks/github"
HEALTH_PATH = "/healthz"
SPARE_FILES = 128  # open files besides connections: the ledger, the queue, git, logs, a trial's pipes
Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Health = Callable[[], str | None]  # what is wrong with the server, or None


@dataclass(frozen=True)
class Tls:
    """The server's certificate (PEM, its chain after it) and private key (PEM, not encrypted)."""

    certfile: Path
    keyfile: Path


class WebhookApp:
    """The ASGI application: ``POST /hooks/github`` and ``GET /healthz``; everything else 404 or 405."""

    def __init__(self, hook: GitHubHook, limits: Limits, health: Health) -> None:
        self.hook = hook
        self.limits = limits
        self.health = health
        # Deliveries write the queue (files, a lock): two threads, whatever the number of connections.
        self.threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mlops-webhook")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan is off and websockets are not served
            return
        try:
            answer = await self._answer(scope, receive)
        except Exception:  # noqa: BLE001 (an answer, never a dropped connection)
            log.exception("a webhook delivery could not be handled")
            answer = Answer(
                HTTPStatus.INTERNAL_SERVER_ERROR, "the delivery could not be handled; see the log"
            )
        except asyncio.CancelledError:  # the server is stopping (not a fault): say so, and the sender retries
            answer = Answer(
                HTTPStatus.SERVICE_UNAVAILABLE, "the server is stopping; deliver again later", True
            )
        if answer is None:  # the client left before its request was whole: no one to answer
            return
        await _send(send, answer, head_only=scope["method"] == "HEAD")
        client = scope.get("client") or ("?", 0)
        log.info(f"{client[0]}:{client[1]} {scope['method']} {_shown(scope['path'])}: {answer.status.value}")

    async def _answer(self, scope: Scope, receive: Receive) -> Answer | None:
        path, method = scope["path"].rstrip("/"), scope["method"]
        if path == HEALTH_PATH:
            if method not in ("GET", "HEAD"):
                return Answer(HTTPStatus.METHOD_NOT_ALLOWED, "GET /healthz", allow="GET, HEAD")
            return await self._in_thread(self._health)
        if path != HOOK_PATH:
            return Answer(HTTPStatus.NOT_FOUND, f"POST GitHub push events to {HOOK_PATH}")
        if method != "POST":
            return Answer(
                HTTPStatus.METHOD_NOT_ALLOWED, f"POST GitHub push events to {HOOK_PATH}", allow="POST"
            )
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        body = await self._body(headers.get("content-length"), receive)
        if not isinstance(body, bytes):
            return body
        event, signature = headers.get("x-github-event", ""), headers.get("x-hub-signature-256")
        return await self._in_thread(lambda: self.hook.deliver(event, signature, body))

    async def _in_thread(self, work: Callable[[], Answer]) -> Answer:
        return await asyncio.get_running_loop().run_in_executor(self.threads, work)

    async def _body(self, declared: str | None, receive: Receive) -> bytes | Answer | None:
        """The whole body, or why not: over the limit (413), too slow (408), or None: the client left."""
        limit, timeout = self.limits.max_body, self.limits.request_timeout_s
        too_big = Answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {limit} bytes")
        if declared is not None and int(declared) > limit:  # h11 has checked that it is a number
            return too_big
        chunks: list[bytes] = []
        size, more = 0, True
        deadline = asyncio.get_running_loop().time() + timeout
        while more:
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                return Answer(
                    HTTPStatus.REQUEST_TIMEOUT, f"the body did not arrive within {timeout:g} s", True
                )
            if message["type"] == "http.disconnect":
                return None
            chunk = bytes(message.get("body", b""))
            size += len(chunk)
            if size > limit:
                return too_big
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        return b"".join(chunks)

    def _health(self) -> Answer:
        problem = self.health()
        queued = len(self.hook.queue.pending())
        if problem:
            return Answer(HTTPStatus.SERVICE_UNAVAILABLE, problem, extra={"queued": queued})
        return Answer(HTTPStatus.OK, "ok", extra={"queued": queued})


async def _send(send: Send, answer: Answer, head_only: bool) -> None:
    body = json.dumps({"message": answer.message, **answer.extra}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if answer.allow:
        headers.append((b"allow", answer.allow.encode()))
    if answer.close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": answer.status.value, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head_only else body})


def _shown(path: str) -> str:
    """A path as the log shows it: ours as they are, anyone else's quoted and cut (no control bytes)."""
    return path if path.rstrip("/") in (HOOK_PATH, HEALTH_PATH) else ascii(path[:80])


class WebhookServer:
    """uvicorn serving :class:`WebhookApp` on a socket bound when this is made (so the port is known and an
    address in use is a clear error before anything starts). ``run`` serves in this thread until SIGINT or
    SIGTERM; ``start``/``stop`` serve in a thread of their own."""

    def __init__(self, app: WebhookApp, host: str, port: int, limits: Limits, tls: Tls | None) -> None:
        self.tls = tls
        config = uvicorn.Config(
            app,
            http=guarded_protocol(limits),
            ws="none",
            lifespan="off",
            log_config=None,  # our logging, with its redaction, not uvicorn's own handlers
            access_log=False,  # the app logs each answer with its status
            proxy_headers=False,
            server_header=False,
            timeout_keep_alive=limits.keep_alive_s,
            timeout_graceful_shutdown=5,
            ssl_certfile=tls.certfile if tls else None,
            ssl_keyfile=tls.keyfile if tls else None,
        )
        try:
            config.load()
        except (OSError, ssl.SSLError) as e:
            raise ConfigError(f"mlops serve: the TLS certificate or key cannot be used: {e}") from e
        _files_for(limits.max_connections)
        self.socket = _bind(host, port)
        self.uvicorn = uvicorn.Server(config)
        self.thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.socket.getsockname()[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"{'https' if self.tls else 'http'}://{f'[{host}]' if ':' in host else host}:{port}{HOOK_PATH}"

    def run(self) -> None:
        self.uvicorn.run(sockets=[self.socket])

    def start(self, timeout_s: float = 30.0) -> None:
        self.thread = threading.Thread(target=self.run, name="mlops-webhook-server", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.uvicorn.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self.uvicorn.started:
            raise ConfigError(f"the webhook server did not start within {timeout_s:g} s")

    def stop(self) -> None:
        """Stop now: open connections are closed, not waited for (``run`` waits for them on SIGINT)."""
        self.uvicorn.should_exit = self.uvicorn.force_exit = True
        if self.thread is not None:
            self.thread.join(timeout=30)


def _files_for(connections: int) -> None:
    """Make room for ``connections`` sockets under the open-files limit (up to its hard limit): past it,
    accepting a connection would fail in the event loop instead of being answered 503."""
    needed = connections + SPARE_FILES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise ConfigError(
                f"mlops serve --max-connections {connections} needs {needed} open files, and the limit is "
                f"{hard} (ulimit -n): give a lower --max-connections"
            )
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as e:
        raise ConfigError(f"mlops serve cannot listen on {host}:{port}: {e.strerror or e}") from e


def make_server(
    host: str,
    port: int,
    secret: str | None,
    branch: str,
    queue: PushQueue,
    repositories: Sequence[str] = (),
    fixed_source: str | None = None,
    limits: Limits | None = None,
    tls: Tls | None = None,
    health: Health | None = None,
) -> WebhookServer:
    """The webhook server. Pushes of ``repositories`` are trained (by clone URL or owner/name); with
    ``fixed_source`` (mlops serve SOURCE) every accepted push trains that source instead. ``health`` says
    what is wrong (the push worker stopped), for ``GET /healthz``."""
    limits = limits or Limits()
    hook = GitHubHook(secret, branch, queue, repositories, fixed_source)
    app = WebhookApp(hook, limits, health or (lambda: None))
    return WebhookServer(app, host, port, limits, tls)
