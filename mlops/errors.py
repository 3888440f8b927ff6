"""One root exception for everything mlops raises on purpose.

Leaves carry the data a person needs to act (file and line, the command that failed, the limit that was
hit). Foreign errors are converted once, at the edge where they happen, with ``raise ... from e``; only the
CLI catches :class:`MlopsError`, prints its one line and exits non-zero.
"""

from __future__ import annotations

from pathlib import Path


class MlopsError(Exception):
    """Root of every error mlops raises on purpose. ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class ConfigError(MlopsError):
    """A setting has a value that cannot work (names the setting and the value)."""

    exit_code = 2


class PullError(MlopsError):
    """The source could not be fetched: not a git repository, unreachable, unknown ref."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"cannot pull {source}: {reason}")
        self.source = source
        self.reason = reason


class SourceError(MlopsError):
    """The pushed code itself is unusable: a syntax error, no Python file, no training entry point."""

    def __init__(self, message: str, path: Path | str | None = None, line: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line else f"{path}: "
        super().__init__(f"{where}{message}")
        self.path = path
        self.line = line
        self.reason = message


class RequirementRefused(SourceError):
    """A pushed requirement names a location or an index (``x @ file:``, ``-e``, ``--index-url``): refused
    before any build, as bad input (exit 2), with the file and the line."""

    exit_code = 2


class LedgerError(MlopsError):
    """The ledger refuses an operation (unknown run, a resume with different settings)."""


class LedgerUnavailable(MlopsError):
    """The ledger file cannot be used: corrupt, locked by another program, read-only."""

    exit_code = 2


class RuntimeUnavailable(MlopsError):
    """A runtime cannot be used here (no Docker engine answers, an image is missing)."""

    exit_code = 3


class TrialLaunchError(MlopsError):
    """A trial could not be started at all (the process or the container did not start)."""

    def __init__(self, trial: str, reason: str) -> None:
        super().__init__(f"trial {trial} could not start: {reason}")
        self.trial = trial
        self.reason = reason


class DatasetError(MlopsError):
    """A data set cannot be imported: no such file, a corrupt archive, a name taken by other content."""

    exit_code = 2


class RunInProgress(MlopsError):
    """The run of this commit and script is being worked on by another live process (its pid said)."""

    exit_code = 3


class Interrupted(KeyboardInterrupt):
    """Not an error: mlops was asked to stop (SIGINT, or SIGTERM taken the same way) and has stopped what
    it was running, each training recorded so that the same command resumes it. The CLI exits with
    128 + the signal's number (130 for SIGINT, 143 for SIGTERM)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
