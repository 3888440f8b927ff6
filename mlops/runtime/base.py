"""The small interface every runtime shares, and the files a trial leaves behind.

A runtime launches the harness (the ``mlops_harness`` package) on one variant of the user's script,
streams its log, waits for it and says how it ended. Whatever the runtime, the harness writes the same files
into the trial's folder, so the orchestrator reads results the same way after a local process or a
container, and even after it was itself restarted and never saw the trial start. Those files' names, the exit
codes and the events are declared in ``mlops_harness.protocol``, the one module of the harness we import.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from mlops.domain import EndReason
from mlops_harness.protocol import ExitCode


@dataclass(frozen=True)
class Limits:
    """What one trial may use. ``None`` means no limit of that sort."""

    timeout_s: float | None = 3600.0
    memory_mb: int | None = 4096
    cpus: float | None = None
    pids: int | None = 512


@dataclass(frozen=True)
class TrialSpec:
    """Everything a runtime needs to launch one trial; nothing runtime-specific beyond ``image``."""

    run_id: str
    trial: int
    code_dir: Path  # the checkout at the pushed commit; mounted read-only in a container
    script: str  # the entry point, relative to code_dir (posix form)
    source_file: Path  # the variant's source text, inside trial_dir; it replaces the script
    trial_dir: Path  # read-write: log, metrics, outcome, checkpoints, work
    image: str = ""  # the training image (Docker only)
    limits: Limits = field(default_factory=Limits)
    network: bool = True
    env: dict[str, str] = field(default_factory=dict)  # seed, checkpoint cadence, ...
    check_model: bool = False  # not a training: load the saved model in code_dir and predict (see load_check)

    @property
    def name(self) -> str:
        return f"{self.run_id}/{self.trial}"

    def harness_args(self, code: str, source: str, out: str) -> list[str]:
        """The harness's arguments, with paths as the process will see them."""
        if self.check_model:
            return ["--check-model", "--model", code, "--out", out]
        return ["--code", code, "--script", self.script, "--source", source, "--out", out]


@dataclass(frozen=True)
class Outcome:
    """How one launch of a trial ended."""

    reason: EndReason
    exit_code: int | None = None
    signal: int | None = None
    duration_s: float = 0.0
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.reason is EndReason.EXITED and self.exit_code == ExitCode.OK

    def describe(self) -> str:
        if self.reason is EndReason.EXITED:
            text = f"exit code {self.exit_code}"
        elif self.reason is EndReason.SIGNAL:
            text = f"killed by signal {self.signal}" if self.signal else "killed"
        elif self.reason is EndReason.TIMEOUT:
            text = "ran past its time limit"
        elif self.reason is EndReason.OOM:
            text = "went past its memory limit"
        else:
            text = "disappeared"
        return f"{text}: {self.detail}" if self.detail else text


class Handle(Protocol):
    """A launched trial. ``data`` is what the ledger keeps so another process can attach to it."""

    spec: TrialSpec

    @property
    def data(self) -> dict[str, Any]: ...


H = TypeVar("H", bound=Handle)


class Runtime(Protocol[H]):
    """The verbs of every runtime, named after the Docker CLI's; ``H`` is the runtime's own handle."""

    name: str

    def run(self, spec: TrialSpec) -> H:
        """Start the trial and return at once. Raises TrialLaunchError if it cannot start."""

    def attach(self, spec: TrialSpec, data: dict[str, Any]) -> H | None:
        """Find a trial launched earlier (perhaps by another process); None if it is gone."""

    def logs(self, handle: H, follow: bool = True) -> Iterator[str]:
        """The trial's output lines as they come; with follow, until it ends."""

    def wait(self, handle: H) -> Outcome:
        """Block until the trial ends (enforcing its time limit) and say how it ended."""

    def stop(self, handle: H) -> None:
        """End the trial now (used for pruning and shutdown); wait() then reports it."""

    def remove(self, handle: H) -> None:
        """Forget a finished trial's process or container; the trial folder stays."""

    def cleanup(self, keep: set[str]) -> list[str]:
        """Remove leftovers of earlier crashes whose trial names are not in ``keep``; say which."""


def follow_file(path: Path, alive: Callable[[], bool], start: int = 0, poll_s: float = 0.2) -> Iterator[str]:
    """Yield lines appended to ``path`` after offset ``start`` until ``alive()`` is false and it is drained."""
    pos = start
    pending = ""
    while True:
        running = alive()
        try:
            with path.open("r", encoding="utf-8", errors="replace", newline="") as fh:
                fh.seek(pos)
                chunk = fh.read()
                pos = fh.tell()
        except FileNotFoundError:
            chunk = ""
        if chunk:
            pending += chunk
            # Keras progress bars redraw with \r; each redraw counts as a line of its own.
            parts = pending.replace("\r\n", "\n").replace("\r", "\n").split("\n")
            pending = parts.pop()
            yield from parts
        elif not running:
            if pending:
                yield pending
            return
        else:
            time.sleep(poll_s)
