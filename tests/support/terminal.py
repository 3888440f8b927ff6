"""A pseudo-terminal read by pyte, a terminal emulator: what a person's terminal shows, cell by cell."""

from __future__ import annotations

import fcntl
import os
import re
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pyte

from tests.support.repos import ROOT

SPINNER = re.compile("^[\u2800-\u28ff] ")  # rich's "dots" spinner starts the live status line


class Terminal:
    """A terminal ``columns`` wide and ``rows`` tall: a program writes to ``slave``; ``screen`` shows it.

    Every status line (a line that starts with the spinner) seen at any moment is kept in ``live``, since
    the live line is redrawn in place and taken away at the end.
    """

    def __init__(self, columns: int = 100, rows: int = 300) -> None:
        self.columns, self.rows = columns, rows
        self.master, self.slave = os.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        self.screen = pyte.Screen(columns, rows)
        self.stream = pyte.ByteStream(self.screen)
        self.raw = bytearray()
        self.live: list[str] = []
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # the slave side closed (EIO on Linux)
                return
            if not data:
                return
            with self.lock:
                self.raw += data
                self.stream.feed(data)
                for line in self.screen.display:
                    line = line.rstrip()
                    if SPINNER.match(line) and (not self.live or self.live[-1] != line):
                        self.live.append(line)

    def lines(self) -> list[str]:
        """The screen's lines as shown now, trailing blanks left out."""
        with self.lock:
            shown = [line.rstrip() for line in self.screen.display]
        while shown and not shown[-1]:
            shown.pop()
        return shown

    def wait_for(self, condition: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.05)
        return condition()

    def run(self, args: list[str], cwd: Path, timeout: float) -> int:
        """``python -m jobs.cli ARGS`` with this terminal as its standard input, output and error."""
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR", "CI")}
        env.update(PYTHONPATH=str(ROOT), TERM="xterm-256color", TF_CPP_MIN_LOG_LEVEL="3")
        process = subprocess.Popen(
            [sys.executable, "-m", "jobs.cli", *args],
            cwd=cwd,
            env=env,
            stdin=self.slave,
            stdout=self.slave,
            stderr=self.slave,
            start_new_session=True,
        )
        try:
            code = process.wait(timeout=timeout)
        finally:
            if process.poll() is None:
                process.kill()
        self.close()
        return code

    def close(self) -> None:
        os.close(self.slave)
        self.reader.join(timeout=10)
