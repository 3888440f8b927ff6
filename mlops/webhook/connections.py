"""What a connection may hold on the webhook's server: the HTTP/1.1 protocol of uvicorn (h11) with the two
guards uvicorn leaves to a proxy. A request's head must arrive within the request timeout of the first byte
the server waits for (slow-loris: a client that sends its headers a byte at a time is cut off, with 408, and
so is one that sends nothing); and no more than ``max_connections`` are open at once: one more is answered
503 and closed, before it costs more than its socket. Both are served on the event loop: a waiting connection
is a socket and a timer, never a thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from mlops.webhook.limits import Limits

log = logging.getLogger("mlops.webhook")
TOO_SLOW = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
BUSY_BODY = b'{"message": "too many connections; try again shortly"}'
BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 5\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(BUSY_BODY), BUSY_BODY)
)
FULL_WARNING_EVERY_S = 60.0  # an attacker who keeps the server full must not also fill its log


class GuardedH11(H11Protocol):
    """uvicorn's h11 protocol with a deadline on each request's head and a cap on open connections."""

    limits: ClassVar[Limits] = Limits()
    last_full_warning: ClassVar[float] = 0.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_timer: asyncio.TimerHandle | None = None
        self.refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections:
            self.refused = True
            self._warn_full()
            transport.write(BUSY)
            transport.close()
            return
        super().connection_made(transport)
        self._watch_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        if not self.refused:  # a refused connection was never made: uvicorn has no state for it
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_head()

    def _watch_head(self) -> None:
        """Start the head's deadline when the server waits for a request, stop it once one has begun."""
        waiting = self.cycle is None or self.cycle.response_complete
        if not waiting or self.transport.is_closing():
            self._stop_head_timer()
        elif self.head_timer is None:
            self.head_timer = self.loop.call_later(self.limits.request_timeout_s, self._head_too_slow)

    def _stop_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _head_too_slow(self) -> None:
        self.head_timer = None
        if self.transport.is_closing():
            return
        if self.conn.their_state is h11.IDLE:  # no request has begun: say why it ends (not mid-answer)
            self.transport.write(TOO_SLOW)
        self.transport.close()

    def _warn_full(self) -> None:
        now = time.monotonic()
        if now - type(self).last_full_warning >= FULL_WARNING_EVERY_S:
            type(self).last_full_warning = now
            log.warning(
                f"{len(self.connections)} connections are open, the most allowed (--max-connections): "
                "new ones get 503 until some end"
            )


def guarded_protocol(limits: Limits) -> type[GuardedH11]:
    """The protocol class for one server, with its limits (uvicorn makes one instance per connection)."""
    return type("WebhookH11", (GuardedH11,), {"limits": limits, "last_full_warning": 0.0})
