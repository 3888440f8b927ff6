"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, for tests that mail a run."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiosmtpd.controller import Controller


class Inbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(envelope.original_content)
        return "250 OK"


@contextmanager
def smtp_inbox() -> Iterator[tuple[Inbox, dict[str, str]]]:
    """A plain SMTP server on 127.0.0.1 (no TLS: the TLS paths are tests/test_notify.py's) and the
    environment that makes mlops mail it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield (
            inbox,
            {
                "MLOPS_SMTP_HOST": "127.0.0.1",
                "MLOPS_SMTP_PORT": str(port),
                "MLOPS_SMTP_SECURITY": "none",
                "MLOPS_MAIL_FROM": "mlops@example.com",
                "MLOPS_MAIL_TO": "ada@example.com",
            },
        )
    finally:
        controller.stop()
