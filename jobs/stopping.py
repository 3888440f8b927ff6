"""Stopping on a signal: SIGTERM, what Jenkins sends when a build is aborted (and what ``kill`` sends), is
taken as SIGINT (Ctrl-C) is.

Outside the training, either signal raises :class:`~mlops.errors.Interrupted` in the main thread at once,
as Python's own SIGINT handler raises KeyboardInterrupt. While trials train, the supervisor is asked to stop
them instead (:meth:`monitor.supervisor.Supervisor.interrupt`): each training is stopped (its checkpoints
kept), recorded as stopped in the ledger, and the supervisor raises Interrupted once it has. Either way the
command's error boundary says how to resume and exits 128 + the signal's number (130, 143).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING

from mlops.errors import Interrupted

if TYPE_CHECKING:
    from monitor.supervisor import Supervisor

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


def on_signals_raise() -> None:
    """SIGINT and SIGTERM raise Interrupted (in the main thread; nothing to do in another)."""
    if threading.current_thread() is threading.main_thread():
        for signum in SIGNALS:
            signal.signal(signum, _raise)


@contextlib.contextmanager
def trials_stop_on_signals(supervisor: Supervisor) -> Iterator[None]:
    """While trials train: SIGINT and SIGTERM stop them through ``supervisor`` (which raises Interrupted
    when it has); a signal when none is training raises at once. A second signal while they stop is
    ignored: the first one's stop is under way."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if supervisor.stopping is not None:
            print("mlops: already stopping: the trainings are being stopped and recorded", file=sys.stderr)
            return
        if not supervisor.interrupt(signum):
            raise Interrupted(signum)

    previous = {signum: signal.signal(signum, handler) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before)
