"""Which process is a run's orchestrator: its pid, start time and host, and whether it still lives."""

from __future__ import annotations

import os
import socket
from typing import Any

import psutil


def me() -> dict[str, Any]:
    return {"pid": os.getpid(), "create_time": psutil.Process().create_time(), "host": socket.gethostname()}


def alive(owner: dict[str, Any] | None) -> bool:
    if not owner or owner.get("host") != socket.gethostname():
        return False
    try:
        return abs(psutil.Process(int(owner["pid"])).create_time() - float(owner["create_time"])) < 1.0
    except psutil.Error:
        return False
