"""The small interface every runtime shares, and the files a trial leaves behind.

A runtime launches the harness (the ``mlops_harness`` package) on one variant of the user's script,
streams its log, waits for it and says how it ended. Whatever the runtime, the harness writes the same files
into the trial's folder, so the orchestrator reads results the same way after a local process or a
container, and even after it was itself restarted and never saw the trial start. Those files' names, the exit
codes and the events are declared in ``mlops_harness.protocol``, the one module of the harness we import.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from mlops.domain import EndReason
from mlops.project import DataPath
from mlops_harness.protocol import ExitCode

LOG_HEAD_BYTES = 4 * 1024 * 1024  # a trial's log keeps its first 4 MB ...
LOG_TAIL_BYTES = 1024 * 1024  # ... and the last 1 MB of a launch's output past them


@dataclass(frozen=True)
class Limits:
    """What one trial may use. ``None`` means no limit of that sort."""

    timeout_s: float | None = 3600.0
    memory_mb: int | None = 4096
    cpus: float | None = None
    pids: int | None = 512  # processes and threads, counted per trial
    disk_mb: int | None = 8192  # what the trial may write: its folder (work/ in it) and its /tmp ...
    disk_files: int | None = 100_000  # ... files and folders


@dataclass(frozen=True)
class TrialSpec:
    """Everything a runtime needs to launch one trial; nothing runtime-specific beyond ``image``."""

    run_id: str
    trial: int
    code_dir: Path  # the checkout at the pushed commit; mounted read-only in a container
    script: str  # the entry point, relative to code_dir (posix form)
    source_file: Path  # the variant's source text, inside trial_dir; it replaces the script
    trial_dir: Path  # read-write: log, metrics, outcome, checkpoints, work
    image: str = ""  # the training image, or the run's environment's image tag (Docker only)
    python: str = ""  # the run's environment's interpreter (local only); "" for the runtime's own
    limits: Limits = field(default_factory=Limits)
    network: bool = True
    env: dict[str, str] = field(default_factory=dict)  # seed, checkpoint cadence, ...
    gpus: int = 0  # GPUs the trial asks for (Docker device requests, Ray's num_gpus)
    repository: str = ""  # where the code came from: each repository has a dataset cache of its own
    check_model: bool = False  # not a training: load the saved model in code_dir and predict (see load_check)
    data: tuple[DataPath, ...] = ()  # the paths the script uses, mapped to files or folders here (data:)

    @property
    def name(self) -> str:
        return f"{self.run_id}/{self.trial}"

    @property
    def cache_key(self) -> str:
        """The name of this repository's dataset cache (one repository's trials never see another's)."""
        origin = self.repository or str(self.code_dir)
        return hashlib.sha256(origin.encode()).hexdigest()[:16]

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
        elif self.reason is EndReason.DISK:
            text = "went past its disk quota"
        else:
            text = "disappeared"
        return f"{text}: {self.detail}" if self.detail else text


class Handle(Protocol):
    """A launched trial. ``data`` is what the ledger keeps so another process can attach to it."""

    spec: TrialSpec

    @property
    def data(self) -> dict[str, Any]: ...


H = TypeVar("H", bound=Handle)


@dataclass(frozen=True)
class Capabilities:
    """What a runtime can do beyond the verbs every one has. A caller asks here, never the runtime's class or
    name: a new runtime says what it offers in one place."""

    # Trials run in images: a run's environment is an image derived from the run's (mlops/envs/images.py),
    # and ``prepare`` builds the runs' images before their trials.
    images: bool = False
    # ``prestart`` starts the next trial's process while one trains (mlops/runtime/ahead.py).
    starts_ahead: bool = False
    # The interpreter a run's environment is a venv over (mlops/envs/local.py); None when ``images``.
    python: str | None = None
    # Its trials, and so the builds of their environments, run in a sandbox (``--unsandboxed``: not).
    sandboxed: bool = True


class NothingAhead:
    """The verbs of trials started ahead, for a runtime that starts nothing ahead (its
    ``capabilities.starts_ahead`` is False): a container or an actor is started when its trial comes."""

    def prestart(self, spec: TrialSpec | None) -> None:
        """Nothing: no trial is started ahead."""

    def end_ahead(self, spec: TrialSpec) -> None:
        """Nothing: no trial is started ahead."""


class Runtime(Protocol[H]):
    """The verbs of every runtime, named after the Docker CLI's; ``H`` is the runtime's own handle. The
    optional abilities are said by ``capabilities``; their verbs do nothing where a runtime lacks them."""

    name: str

    @property
    def capabilities(self) -> Capabilities: ...

    def prepare(self, images: list[str], say: Callable[[str], None]) -> None:
        """Get ready for the runs' images (build what is missing): with ``capabilities.images``."""

    def prestart(self, spec: TrialSpec | None) -> None:
        """Start the process of trial ``spec`` ahead, or let go of one started (None): with
        ``capabilities.starts_ahead``."""

    def end_ahead(self, spec: TrialSpec) -> None:
        """End the process started ahead for ``spec``, if it still waits: with ``capabilities.starts_ahead``."""

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


def repository_cache(root: Path, spec: TrialSpec) -> Path:
    """The dataset cache of the trial's repository under ``root``, made when missing."""
    folder = root / spec.cache_key
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def cache_env(cache: Path) -> dict[str, str]:
    """The variables that point a trial's libraries at its repository's cache folder ``cache`` (Keras's,
    scikit-learn's, PyTorch's and Hugging Face's data sets and weights, matplotlib's fonts): what one trial
    downloads, the next reads."""
    return {
        "MPLCONFIGDIR": str(cache / "matplotlib"),
        "KERAS_HOME": str(cache / "keras"),
        "SCIKIT_LEARN_DATA": str(cache / "scikit_learn_data"),
        "TORCH_HOME": str(cache / "torch"),
        "HF_HOME": str(cache / "huggingface"),
    }


def open_log(path: Path) -> int:
    """The trial's log, opened to append without following a link the training may have put there."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    for _ in range(2):
        try:
            fd = os.open(path, flags, 0o644)
        except OSError:
            fd = -1
        if fd >= 0 and stat.S_ISREG(os.fstat(fd).st_mode):
            os.set_blocking(fd, True)
            return fd
        if fd >= 0:
            os.close(fd)
        # A link, a pipe or a folder planted by an earlier launch: it goes, and a plain file takes its place.
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    raise OSError(f"cannot open {path} as a plain file")


def follow_file(path: Path, alive: Callable[[], bool], start: int = 0, poll_s: float = 0.2) -> Iterator[str]:
    """Yield lines appended to ``path`` after offset ``start`` until ``alive()`` is false and it is drained."""
    pos = start
    pending = ""
    while True:
        running = alive()
        try:  # never through a link the trial put in its file's place
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            with open(fd, encoding="utf-8", errors="replace", newline="") as fh:
                fh.seek(pos)
                chunk = fh.read()
                pos = fh.tell()
        except OSError:
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


def _nanoseconds(stamp: bytes) -> int | None:
    """An engine's log time stamp (RFC 3339, nanoseconds, UTC) in nanoseconds since the epoch."""
    text = stamp.decode("ascii", errors="replace").rstrip("Z")
    whole, _, fraction = text.partition(".")
    try:
        seconds = datetime.fromisoformat(whole).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None
    return int(seconds) * 10**9 + int((fraction + "000000000")[:9] or 0)


def stamped_lines(chunks: Iterable[bytes], after: int | None) -> Iterator[tuple[list[bytes], int | None]]:
    """Lines prefixed by an engine's time stamp (``docker logs --timestamps``), a chunk at a time: the
    lines of each chunk (split at carriage returns too: a progress bar's redraws count as lines) and the
    time stamp of the last one. Lines stamped at or before ``after`` (nanoseconds) are left out."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        yield from _stamped(lines, after)
    if pending:
        yield from _stamped([pending], after)


def _stamped(lines: list[bytes], after: int | None) -> Iterator[tuple[list[bytes], int | None]]:
    parts: list[bytes] = []
    last = b""
    for line in lines:
        stamp, _, text = line.partition(b" ")
        if after is not None:
            at = _nanoseconds(stamp)
            if at is None or at <= after:
                continue
        parts += text.split(b"\r")
        last = stamp
    if parts:
        yield parts, _nanoseconds(last)
