"""What a person watching a run sees: which job runs, which trial, epochs as they go, a leaderboard.

On a terminal it uses rich (colours, a table); in Jenkins's console or a pipe it prints plain lines.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Sequence
from typing import TextIO

from rich.console import Console
from rich.table import Table

from mlops.envsafe import Redactor

HARNESS_PREFIX = "[mlops] "


class Progress:
    """Every line passes ``redact`` (by default: the values of this environment's secrets masked)."""

    def __init__(
        self, stream: TextIO | None = None, verbose: bool = False, redact: Redactor | None = None
    ) -> None:
        self.stream = stream or sys.stdout
        self.console = Console(file=self.stream, highlight=False, soft_wrap=True)
        self.verbose = verbose
        self.redact = redact if redact is not None else Redactor.from_env(os.environ)
        self.lock = threading.RLock()

    def _print(self, text: str, style: str | None = None) -> None:
        with self.lock:
            self.console.print(self.redact(text), style=style, markup=False)

    def job(self, number: int, title: str) -> None:
        self._print(f"== job {number}: {title}", style="bold cyan")

    def info(self, text: str) -> None:
        self._print(text)

    def warn(self, text: str) -> None:
        self._print(f"warning: {text}", style="yellow")

    def trial_started(
        self, run: str, number: int, changes: Sequence[str], restart: str | None = None
    ) -> None:
        what = "; ".join(changes) if changes else "as pushed"
        if restart:
            self._print(f"-- {run} trial {number} restarted ({restart})", style="yellow")
        else:
            self._print(f"-- {run} trial {number}: {what}", style="bold")

    def trial_line(self, run: str, number: int, line: str) -> None:
        """A line of the training's output: the harness's own lines always, all of them when verbose."""
        if line.startswith(HARNESS_PREFIX):
            self._print(f"   {line[len(HARNESS_PREFIX) :]}")
        elif self.verbose and line.strip():
            self._print(f"   | {line}", style="dim")

    def trial_finished(self, run: str, number: int, status: str, text: str) -> None:
        style = "green" if status == "succeeded" else "red"
        self._print(f"   trial {number} {status}: {text}", style=style)

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        if self.console.is_terminal:
            table = Table(title=title)
            for column in columns:
                table.add_column(column)
            for row in rows:
                table.add_row(*("" if v is None else str(v) for v in row))
            with self.lock:
                self.console.print(table)
            return
        cells = [[str(c) for c in columns]] + [["" if v is None else str(v) for v in row] for row in rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
        lines = [title] + [
            "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells
        ]
        with self.lock:
            self.stream.write(self.redact("\n".join(lines)) + "\n")
            self.stream.flush()
