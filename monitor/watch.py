"""Job 6's loop: find the runs of a workspace whose orchestrator died, and carry them on.

A run's own orchestrator (``mlops run`` or Jenkins job 4) restarts its dead trainings itself (the
supervisor); this loop covers the orchestrator dying: each unfinished run whose owner process is gone is
handed to ``take_over``, which re-attaches to trainings still going and restarts dead ones from their
checkpoints. Between looks it follows the runtime's event stream when it has one (Docker), so a death is
shown the moment it happens, and otherwise sleeps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from mlops.domain import RunStatus
from mlops.ledger import Ledger, RunRecord
from mlops.progress import Progress
from mlops.runtime.base import Runtime

TakeOver = Callable[[list[RunRecord]], object]


def orphaned_runs(ledger: Ledger) -> list[RunRecord]:
    """Unfinished runs whose orchestrator process is gone."""
    return [
        run
        for run in ledger.runs()
        if run.status is RunStatus.RUNNING and not ledger.owner_alive(ledger.owner(run.id))
    ]


def watch(
    ledger: Ledger,
    progress: Progress,
    runtime: Callable[[], Runtime[Any]],
    take_over: TakeOver,
    once: bool = False,
    interval_s: float = 2.0,
) -> int:
    """Look for orphaned runs every ``interval_s`` (once with ``once``) and hand them to ``take_over``.

    ``runtime`` makes the runtime on first need, so a workspace with nothing to watch does not require
    a Docker engine to answer.
    """
    made: Runtime[Any] | None = None
    while True:
        orphans = orphaned_runs(ledger)
        if orphans:
            progress.info(
                f"   taking over {len(orphans)} run(s) whose orchestrator is gone: "
                + ", ".join(r.id for r in orphans)
            )
            take_over(orphans)
        if once:
            return 0
        made = made or runtime()
        deaths = getattr(made, "deaths", None)
        if deaths is None:  # local processes: look again after the interval
            time.sleep(interval_s)
            continue
        for death in deaths(interval_s):
            code = f" (exit code {death['exit']})" if death["exit"] else ""
            progress.info(f"   {death['event']}: run {death['run']} trial {death['trial']}{code}")
