"""What one client may take of the webhook's server: the ``mlops serve`` flags' values and their defaults
(here, apart from the server, so that the command's help does not load it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """What one client may take of the server (``mlops serve`` flags)."""

    max_body: int = 1024 * 1024  # GitHub's push payloads are a few kB; 20 commits with long file lists < 1 MB
    request_timeout_s: float = 10.0  # to send a request's head; then again to send its body
    max_connections: int = 1000  # open at once; GitHub opens a few, the rest is headroom for slow clients
    keep_alive_s: int = 5  # an idle connection between two requests

    def __post_init__(self) -> None:
        for name in ("max_body", "request_timeout_s", "max_connections", "keep_alive_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"webhook limit {name} must be above 0, got {getattr(self, name)}")
