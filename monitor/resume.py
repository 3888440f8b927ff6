"""Where an unfinished trial goes on from when its run is resumed: a launch that ended while no
orchestrator watched it (read, not run again), or one that was stopped on purpose (started again from its
checkpoint, not counted as a restart)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from mlops import trial_files, trial_records
from mlops.domain import EndReason
from mlops.ledger import Ledger
from mlops.runtime.base import Outcome, TrialSpec
from mlops_harness.protocol import OUTCOME_FILE


@dataclass
class Launch:
    """Where a trial's next launch starts from."""

    handle: Any = None  # a training still going, attached to
    ended: Outcome | None = None  # a launch that ended while nothing watched it: read, not run again
    restart: str | None = None  # why it starts again (a restart: counted)
    resumed: str | None = None  # why it starts again after it was stopped on purpose (not counted)


def ended_while_away(spec: TrialSpec, data: dict[str, Any]) -> Outcome | None:
    """How the launch ``data`` describes ended, when it ended by itself while no orchestrator watched it
    (the harness's outcome file, written after that launch started); None otherwise."""
    try:
        started = float(data.get("started", float("inf")))
        info = trial_files.stat_regular(spec.trial_dir, OUTCOME_FILE)
    except (trial_files.BadTrialFile, TypeError, ValueError):
        return None
    if info is None or info.st_mtime < started:
        return None
    code = trial_records.said_exit_code(spec.trial_dir)  # read as the trial reader reads it: no link
    if code is None:
        return None
    return Outcome(EndReason.EXITED, code, None, time.time() - started, "it ended while mlops was away")


def stopped_by(ledger: Ledger, run_id: str, number: int) -> str | None:
    """The signal that stopped the trial's last launch on purpose (its last start-or-stop event is a
    ``trial-stopped``), or None."""
    return ledger.stopped_by(run_id, number)
