"""Clients that hold a web server's connections as an attacker or a bad network does, bounded in count and time:
for the webhook's test and its benchmark. Five kinds, in turn:

- ``silent``: connects and sends nothing;
- ``trickle``: sends a request's head one byte at a time (slow-loris);
- ``stalled_body``: sends a whole head announcing 1000 bytes of body, then 8 of them, then nothing;
- ``abandoned``: sends a whole request and closes without reading the answer;
- ``reset``: sends half a head and resets the connection (RST).

The first three stay open until the server closes them; ``watch`` records what each was answered and when.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import time
from dataclasses import dataclass, field

KINDS = ("silent", "trickle", "stalled_body", "abandoned", "reset")
HELD = ("silent", "trickle", "stalled_body")  # those the server must end
HEAD = b"POST /hooks/github HTTP/1.1\r\nHost: webhook\r\nX-GitHub-Event: push\r\n"


@dataclass
class Held:
    kind: str
    sock: socket.socket
    answer: bytes = b""
    ended_after_s: float | None = None  # when the server closed it, after it was opened


@dataclass
class SlowClients:
    host: str
    port: int
    count: int
    held: list[Held] = field(default_factory=list)
    opened_at: float = 0.0

    def open(self) -> None:
        self.opened_at = time.monotonic()
        for number in range(self.count):
            kind = KINDS[number % len(KINDS)]
            sock = socket.create_connection((self.host, self.port), timeout=10)
            if kind == "trickle":
                sock.sendall(HEAD)
            elif kind == "stalled_body":
                sock.sendall(HEAD + b"Content-Length: 1000\r\n\r\n" + b'{"ref": ')
            elif kind == "abandoned":
                sock.sendall(HEAD + b"Content-Length: 2\r\n\r\n{}")
                sock.close()
                continue
            elif kind == "reset":
                sock.sendall(b"POST /hooks/github HTTP/1.1\r\nHost: web")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
                continue
            sock.setblocking(False)
            self.held.append(Held(kind, sock))

    def watch(self, seconds: float, trickle_every_s: float = 0.2) -> None:
        """Until the server has closed every held connection, or ``seconds`` pass: trickle a byte to each
        slow-loris, and read what the server answers."""
        selector = selectors.DefaultSelector()
        for held in self.held:
            selector.register(held.sock, selectors.EVENT_READ, held)
        deadline = time.monotonic() + seconds
        next_byte = time.monotonic()
        while selector.get_map() and time.monotonic() < deadline:
            if time.monotonic() >= next_byte:
                next_byte += trickle_every_s
                for held in self.held:
                    if held.kind == "trickle" and held.ended_after_s is None:
                        with contextlib.suppress(OSError):  # the server may have closed it just now
                            held.sock.send(b"X")
            for key, _ in selector.select(timeout=trickle_every_s / 2):
                held = key.data
                try:
                    chunk = held.sock.recv(4096)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    chunk = b""
                held.answer += chunk
                if not chunk:
                    held.ended_after_s = time.monotonic() - self.opened_at
                    selector.unregister(held.sock)
        selector.close()

    def still_open(self) -> list[Held]:
        return [held for held in self.held if held.ended_after_s is None]

    def close(self) -> None:
        for held in self.held:
            held.sock.close()
