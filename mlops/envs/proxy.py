"""The build sandbox's only way out: an HTTP proxy on a unix socket that reaches the package index, nothing else.

A build runs in a sandbox (or a container) with no network of its own. The one thing it can reach is this
proxy's socket, bind-mounted into it; a forwarder inside (:mod:`mlops.envs.forwarder`) listens on the
sandbox's loopback and is uv's ``HTTPS_PROXY``. The proxy accepts ``CONNECT host:port`` (TLS stays end to
end: uv checks the index's certificate against the machine's CA bundle) and plain ``GET http://...`` only
for the hosts of the index uv is configured with (:func:`index_hosts`), and refuses anything else with 403,
remembering what it refused so the build's error can say so. DNS is resolved here, on the host.

No well-kept library fits this job (a filtering CONNECT proxy on a unix socket, in-process, a few hundred
connections per build): proxy.py and pproxy are whole proxy servers with their own process models and
configuration languages; the standard library's socketserver does it in a page.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import socketserver
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit

IDLE_S = 120.0  # a tunnel with no traffic for this long is closed
MAX_HEADER = 16384
# uv's index variables (as mlops hands them to uv) whose URLs the build may reach.
INDEX_VARIABLES = ("UV_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_DEFAULT_INDEX", "UV_INDEX", "UV_FIND_LINKS")


def default_index_hosts() -> set[tuple[str, int]]:
    """The hosts of the index uv uses when none is configured (PyPI: its pages and its file host), as pip
    knows them (pip's own constant, so no host name is written here)."""
    try:
        from pip._internal.models.index import PyPI  # the one public place that names them
    except ImportError:
        return set()
    return {(str(PyPI.netloc), 443), (str(PyPI.file_storage_domain), 443)}


def index_hosts(env: Mapping[str, str], extra: Iterable[str] = ()) -> set[tuple[str, int]]:
    """(host, port) of every index uv is configured with in ``env`` (uv's variables, as :mod:`mlops.envs.uv`
    sets them), plus ``extra`` URLs (allowed direct references); the default index's when none is set."""
    hosts: set[tuple[str, int]] = set()
    urls = [*extra]
    for name in INDEX_VARIABLES:
        for word in env.get(name, "").split():
            urls.append(word.split("=", 1)[1] if "=" in word.split("://")[0] else word)
    for url in urls:
        parts = urlsplit(url.removeprefix("git+"))
        if parts.scheme in ("http", "https") and parts.hostname:
            hosts.add((parts.hostname.lower(), parts.port or (443 if parts.scheme == "https" else 80)))
    if not (env.get("UV_INDEX_URL") or env.get("UV_DEFAULT_INDEX")):
        hosts |= default_index_hosts()
    return hosts


def _relay(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until one side closes or nothing moves for IDLE_S."""
    pair = {a: b, b: a}
    while True:
        ready, _, _ = select.select(list(pair), [], [], IDLE_S)
        if not ready:
            return
        for sock in ready:
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            try:
                pair[sock].sendall(data)
            except OSError:
                return


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        client: socket.socket = self.request
        client.settimeout(30)
        head = b""
        try:
            while b"\r\n\r\n" not in head and len(head) < MAX_HEADER:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
        except OSError:
            return
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split()
        if len(parts) != 3:
            client.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            return
        method, target, version = parts
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            self._tunnel(client, host.strip("[]").lower(), int(port) if port.isdigit() else 0, b"")
            return
        url = urlsplit(target)
        if not url.hostname:
            client.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            return
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        rest = head.split(b"\r\n", 1)[1] if b"\r\n" in head else b""
        first = f"{method} {path} {version}\r\n".encode("latin-1") + rest
        self._tunnel(client, url.hostname.lower(), url.port or 80, first)

    def _tunnel(self, client: socket.socket, host: str, port: int, first: bytes) -> None:
        if (host, port) not in self.server.allowed:
            self.server.refused.add(f"{host}:{port}")
            client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        try:
            upstream = socket.create_connection((host, port), timeout=30)
        except OSError:
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        with upstream:
            if first:
                upstream.sendall(first)
            else:
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            client.settimeout(None)
            upstream.settimeout(None)
            _relay(client, upstream)


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, allowed: set[tuple[str, int]]) -> None:
        self.allowed = allowed
        self.refused: set[str] = set()
        super().__init__(path, _Handler)


class IndexProxy:
    """The proxy of one build: ``with IndexProxy(folder, hosts) as proxy:`` serves ``proxy.socket``."""

    NAME = "index.sock"

    def __init__(self, folder: Path, allowed: set[tuple[str, int]]) -> None:
        self.folder = folder
        self.socket = folder / self.NAME
        self.allowed = allowed
        self._server: _Server | None = None

    @property
    def refused(self) -> set[str]:
        return set(self._server.refused) if self._server else set()

    def __enter__(self) -> IndexProxy:
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o755)  # the build's unprivileged user reaches the socket inside
        self.socket.unlink(missing_ok=True)
        self._server = _Server(str(self.socket), self.allowed)
        os.chmod(self.socket, 0o666)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        with contextlib.suppress(OSError):
            self.socket.unlink()


@contextlib.contextmanager
def serving(folder: Path, allowed: set[tuple[str, int]]) -> Iterator[IndexProxy]:
    with IndexProxy(folder, allowed) as proxy:
        yield proxy
