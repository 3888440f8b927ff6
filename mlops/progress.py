"""What a person watching a run sees: which job runs, which trial, epochs as they go, a leaderboard.

On a terminal it uses rich: colours, tables that wrap their words, and a live status line at the bottom
(the run, the trial of the budget, the epoch of each running trial, the best metric so far against the
target, the time left in the budget). The status line is fed by what the orchestrator already knows (the
ledger's trials, the harness's epoch events), never by parsing log lines. In Jenkins's console or a pipe
there is no status line: plain lines, one per event, and plain tables wrapped to the width. Every text
passes :func:`terminal_safe` on its way out: what a push wrote reaches the terminal as text, never as orders.
"""

from __future__ import annotations

import re
import shutil
import sys
import textwrap
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

from rich.console import Console, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from mlops.config import read_environment
from mlops.envsafe import Redactor

HARNESS_PREFIX = "[mlops] "
PLAIN_WIDTH = 120  # a plain table's width when the output is no terminal (Jenkins's console, a file)
WRAP_FROM = 24  # a column whose longest cell is longer than this may wrap; shorter ones stay whole


# What a terminal takes as an order rather than text: C0 controls but tab and line feed (ESC starts colour,
# cursor and title sequences; CR and BS overwrite what is shown), DEL, C1 controls (CSI on its own), and the
# Unicode marks that reorder or hide text (bidirectional overrides and isolates, as in "Trojan Source").
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """``text`` with every character a terminal would obey shown as its escape (``\\x1b``, ``\\u202e``):
    what a push wrote (a commit subject, a file name, a training's output, an error quoting it) is seen,
    never run by the person's terminal."""
    return UNSAFE.sub(_escape, text)


def _escape(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clock(seconds: float) -> str:
    """``1:05:09``, ``4:07``, ``0:09``: a duration as a person reads it on a clock."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@dataclass
class Running:
    """A trial under way: since when, and its latest epoch (from the harness's epoch events)."""

    since: float
    epoch: int = 0
    epochs: int | None = None


@dataclass
class RunState:
    """Where one run stands, for its status line."""

    run: str
    target: float
    max_trials: int
    deadline: float | None  # when the --max-minutes budget ends (seconds since the epoch), if there is one
    metric: str
    best: float | None = None
    running: dict[int, Running] = field(default_factory=dict)

    def line(self, now: float) -> str:
        head = f"run {self.run}"
        if self.deadline is not None:
            left = self.deadline - now
            head += f", {clock(left)} left" if left > 0 else ", its time budget is used"
        parts = [head]
        for number, r in sorted(self.running.items()):
            piece = f"trial {number} ({number + 1} of {self.max_trials})"
            if r.epoch:  # the epochs say how far it is; the spinner, that it is alive
                piece += f": epoch {r.epoch}" + (f" of {r.epochs}" if r.epochs else "")
            else:  # no epochs (yet, or ever: scikit-learn): how long it has been going
                piece += f": {clock(now - r.since)} in"
            parts.append(piece)
        if not self.running:
            parts.append(f"between trials (budget {self.max_trials})")
        if self.best is None:
            parts.append(f"no {self.metric} yet, target {self.target:g}")
        else:
            against = ">=" if self.best >= self.target else "<"
            parts.append(f"best {self.metric} {self.best:.4f} {against} target {self.target:g}")
        return " · ".join(parts)


@dataclass(frozen=True)
class Said:
    """A line a step hands back to be shown: a warning or not is its field, never its words."""

    text: str
    warning: bool = False


class Progress:
    """Every line passes ``redact`` (by default: the values of this environment's secrets masked)."""

    def __init__(
        self, stream: TextIO | None = None, verbose: bool = False, redact: Redactor | None = None
    ) -> None:
        self.stream = stream or sys.stdout
        self.console = Console(file=self.stream, highlight=False, soft_wrap=True)
        self.verbose = verbose
        self.redact = redact if redact is not None else read_environment().redactor
        self.lock = threading.RLock()  # one line at a time on the stream
        # The status is read by the live display's own thread: a lock of its own, never held while printing
        # (printing takes the live display's lock, and its refresh takes this one).
        self.state_lock = threading.Lock()
        self.runs: dict[str, RunState] = {}
        # A real terminal only: FORCE_COLOR (set for Jenkins's AnsiColor) makes rich take a log for a terminal,
        # where a line redrawn in place would be a mess; TTY_INTERACTIVE=0 turns the line off.
        self.live_ok = self.console.is_interactive and _isatty(self.stream)
        self.live: Live | None = None
        self.spinner = Spinner("dots", style="cyan")

    def _print(self, text: str, style: str | None = None) -> None:
        with self.lock:
            self.console.print(terminal_safe(self.redact(text)), style=style, markup=False)

    # -- the status line -------------------------------------------------------------------------------

    def status_lines(self, now: float | None = None) -> list[str]:
        """The status line of each run under way (what the live display shows)."""
        now = time.time() if now is None else now
        with self.state_lock:
            return [terminal_safe(state.line(now)) for state in self.runs.values()]

    def _renderable(self) -> RenderableType:
        lines = self.status_lines()
        self.spinner.update(text=Text("\n".join(lines), style="bold", no_wrap=True, overflow="ellipsis"))
        return self.spinner if lines else Text("")

    def run_started(
        self,
        run: str,
        target: float,
        max_trials: int,
        deadline: float | None,
        metric: str | None,
        best: float | None,
    ) -> None:
        """A run is being tuned (or resumed): its status line shows from now until :meth:`run_ended`."""
        with self.state_lock:
            self.runs[run] = RunState(run, target, max_trials, deadline, metric or "metric", best)
        with self.lock:
            if self.live_ok and self.live is None:
                self.live = Live(
                    console=self.console,
                    get_renderable=self._renderable,
                    refresh_per_second=4,
                    transient=True,
                    # print() elsewhere in this process goes above the line, when the line is on stdout
                    redirect_stdout=self.stream is sys.stdout,
                    redirect_stderr=self.stream is sys.stdout,
                )
                self.live.start()

    def run_ended(self, run: str) -> None:
        with self.state_lock:
            self.runs.pop(run, None)
            idle = not self.runs
        if idle:
            self.close()

    def close(self) -> None:
        """Take the status line away (the terminal gets its cursor back)."""
        with self.lock:
            if self.live is not None:
                self.live.stop()
                self.live = None

    def _running(self, run: str, number: int) -> Running | None:
        state = self.runs.get(run)
        if state is None:
            return None
        return state.running.setdefault(number, Running(time.time()))

    # -- events ----------------------------------------------------------------------------------------

    def job(self, number: int, title: str) -> None:
        self._print(f"== job {number}: {title}", style="bold cyan")

    def info(self, text: str) -> None:
        self._print(text)

    def say(self, said: Said) -> None:
        (self.warn if said.warning else self.info)(said.text)

    def warn(self, text: str) -> None:
        self._print(f"warning: {text}", style="yellow")

    def trial_started(
        self, run: str, number: int, changes: Sequence[str], restart: str | None = None
    ) -> None:
        with self.state_lock:
            if run in self.runs:
                self.runs[run].running[number] = Running(time.time())
            state = self.runs.get(run)
            of = f" ({number + 1} of {state.max_trials})" if state else ""
        what = "; ".join(changes) if changes else "as pushed"
        if restart:
            self._print(f"-- {run} trial {number} restarted ({restart})", style="yellow")
        else:
            self._print(f"-- {run} trial {number}{of}: {what}", style="bold")

    def trial_attached(self, run: str, number: int) -> None:
        """A training still going when mlops came back: followed again, not started anew."""
        with self.state_lock:
            self._running(run, number)
        self._print(f"   re-attached to {run} trial {number}, still training")

    def trial_epoch(self, run: str, number: int, epoch: int, epochs: int | None) -> None:
        """An epoch of a running trial ended (the harness's epoch event). Only the status line shows it:
        the harness's own line already says it in the log."""
        with self.state_lock:
            running = self._running(run, number)
            if running is not None:
                running.epoch, running.epochs = epoch, epochs

    def trial_line(self, run: str, number: int, line: str) -> None:
        """A line of the training's output: the harness's own lines always, all of them when verbose."""
        if line.startswith(HARNESS_PREFIX):
            self._print(f"   {line[len(HARNESS_PREFIX) :]}")
        elif self.verbose and line.strip():
            self._print(f"   | {line}", style="dim")

    def trial_finished(
        self, run: str, number: int, status: str, text: str, metric: float | None = None
    ) -> None:
        with self.state_lock:
            state = self.runs.get(run)
            if state is not None:
                state.running.pop(number, None)
                if metric is not None and (state.best is None or metric > state.best):
                    state.best = metric
        style = "green" if status == "succeeded" else "red"
        self._print(f"   trial {number} {status}: {text}", style=style)

    # -- tables ----------------------------------------------------------------------------------------

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        """A table; a long cell wraps at word boundaries (on a terminal and in plain text alike)."""
        title = terminal_safe(self.redact(title))  # it quotes a run's reason: a trial's own words
        cells = [["" if v is None else terminal_safe(self.redact(str(v))) for v in row] for row in rows]
        longest = [max([len(column)] + [len(r[i]) for r in cells]) for i, column in enumerate(columns)]
        if self.console.is_terminal:
            table = Table(title=Text(title), title_justify="left")  # Text: "[code]" is not markup
            for column, width in zip(columns, longest, strict=True):
                wraps = width > WRAP_FROM
                table.add_column(column, no_wrap=not wraps, overflow="fold" if wraps else "ellipsis")
            for row in cells:
                table.add_row(*(Text(cell) for cell in row))  # text, never markup ("[code]" stays)
            with self.lock:
                self.console.print(table, soft_wrap=False)
            return
        width = shutil.get_terminal_size((PLAIN_WIDTH, 24)).columns
        lines = [title, *plain_table([list(columns), *cells], width)]
        with self.lock:
            self.stream.write(self.redact("\n".join(lines)) + "\n")
            self.stream.flush()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no such method, or a closed file
        return False


def plain_table(cells: list[list[str]], width: int) -> list[str]:
    """Rows of cells as aligned text lines; when they are wider than ``width``, the widest column wraps at
    word boundaries (continued on the next lines, in its own column), never cut."""
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    widest = max(range(len(widths)), key=lambda i: widths[i])
    over = sum(widths) + 2 * (len(widths) - 1) - width
    if over > 0:
        widths[widest] = max(WRAP_FROM, widths[widest] - over)
    lines = []
    for row in cells:
        parts = [
            (textwrap.wrap(v, widths[i], break_long_words=False, break_on_hyphens=False) or [""])
            if i == widest
            else [v]
            for i, v in enumerate(row)
        ]
        for k in range(max(len(p) for p in parts)):
            texts = [p[k] if k < len(p) else "" for p in parts]
            lines.append("  ".join(t.ljust(w) for t, w in zip(texts, widths, strict=True)).rstrip())
    return lines
