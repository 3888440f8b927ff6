"""Ending the harness's process without the interpreter's teardown.

With TensorFlow loaded, Python's own finalization (freeing every module and the C++ objects behind them)
takes 1.5 to 2 s after the trial's last event, seconds every trial waits for nothing. Everything a script
relies on at exit is done here first, in the order the interpreter does it: non-daemon threads are waited
for, ``atexit`` handlers run (the script's, and the libraries'), files the script left open are flushed, and
the standard streams; then the process ends with ``os._exit``.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import io
import os
import sys
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn


BUFFERED = (io.TextIOWrapper, io.BufferedWriter, io.BufferedRandom)  # what open() returns that holds data


def flush_open_files() -> int:
    """Flush every file the script left open with data in its buffer (``f = open(...)`` without a close);
    how many. Only the concrete buffered types are looked for: a check against ``io.IOBase`` (an ABC) on
    every object of a TensorFlow process takes seconds, this takes a fraction of one."""
    flushed = 0
    for obj in gc.get_objects():
        if type(obj) not in BUFFERED:
            continue
        try:
            if not obj.closed and obj.writable():
                obj.flush()
                flushed += 1
        except (OSError, ValueError):  # a broken pipe, or closed since: nothing left to keep
            pass
    return flushed


def leave(code: int) -> NoReturn:
    """End the process with ``code``, as ``sys.exit`` would, minus the interpreter's teardown."""
    current = threading.current_thread()
    for thread in threading.enumerate():
        if thread is not current and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()  # what the interpreter runs first at exit; not run again by os._exit
    flush_open_files()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()
    os._exit(code)
