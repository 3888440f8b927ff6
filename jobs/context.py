"""What every step of the pipeline works with: the settings, the ledger, the person watching, and the
run locks this process holds (one run per commit and script at a time, see :mod:`jobs.runlock`)."""

from __future__ import annotations

from dataclasses import dataclass

from jobs.runlock import RunLocks, key
from mlops.config import Settings
from mlops.domain import RunStatus
from mlops.layout import WorkspaceLayout
from mlops.ledger import Ledger, RunRecord
from mlops.progress import Progress


@dataclass
class Context:
    settings: Settings
    ledger: Ledger
    progress: Progress
    run_locks: RunLocks | None = None  # the workspace's (made when not given)

    @classmethod
    def open(cls, settings: Settings, progress: Progress | None = None) -> Context:
        return cls(
            settings,
            Ledger(settings.ledger_path),
            progress or Progress(verbose=settings.verbose, redact=settings.environment.redactor),
        )

    @property
    def locks(self) -> RunLocks:
        if self.run_locks is None:
            self.run_locks = RunLocks(WorkspaceLayout(self.settings.workspace).locks)
        return self.run_locks

    def hold_script(self, source: str, commit: str, script: str) -> None:
        """This process works on ``script`` at ``commit`` from now on; RunInProgress (exit 3) when another
        live process does (its run named, when the ledger has it, with how to follow it)."""
        name = key(source, commit, script)
        if self.locks.holds(name):
            return
        runs = [r for r in self.ledger.find_runs(source, commit, script) if r.status is RunStatus.RUNNING]
        what = f"run {runs[-1].id} ({script} at {commit[:12]})" if runs else f"{script} at {commit[:12]}"
        follow = f"mlops show {runs[-1].id}" if runs else "mlops history"
        self.locks.hold_or_refuse(name, what, follow)

    def hold_run(self, run: RunRecord) -> bool:
        """Hold the run's lock (see hold_script); True when this call took it, False when it was held."""
        held = self.locks.holds(key(run.source, run.commit, run.script))
        self.hold_script(run.source, run.commit, run.script)
        return not held

    def let_go(self, run: RunRecord) -> None:
        self.locks.release(key(run.source, run.commit, run.script))

    def free_to_hold(self, run: RunRecord) -> bool:
        """Take the run's lock when no other process holds it; False when one does."""
        return self.locks.hold(key(run.source, run.commit, run.script)) is None
