"""A tuning trial whose script failed after the harness stopped one of its fits early is run once more
without the early stop (``Supervisor.execute_with_plain_retry``): what is needed to tell it, and to set the
first attempt aside."""

from __future__ import annotations

import shutil
from pathlib import Path

from mlops import trial_files, trial_records
from mlops.domain import TrialStatus
from mlops.ledger import TrialRecord
from mlops.runtime.base import TrialSpec
from mlops.trial_files import BadTrialFile
from mlops_harness.protocol import ENV_PATIENCE, ENV_STOP_AT, EventKind, FailureClass

# The variables of the harness's early stop: its patience, and the stop past the target.
EARLY_STOP_ENV = (ENV_PATIENCE, ENV_STOP_AT)
# Failures of the script's own code that a fit stopped early can cause (an index past the end of its history).
AFTER_STOP = frozenset({FailureClass.CODE.value, FailureClass.API.value})


def stopped_early(trial_dir: Path) -> bool:
    """True when the harness stopped a fit of the trial early (a ``stopped`` event, read by the trial reader)."""
    try:
        return any(event.kind is EventKind.STOPPED for event in trial_records.events(trial_dir))
    except BadTrialFile:
        return False


def broke_after_stop(done: TrialRecord, spec: TrialSpec) -> str | None:
    """The error of a trial whose script failed after the harness stopped one of its fits early (failed, or
    failed after its metric was measured), when it ran with the early stop; else None."""
    if not any(name in spec.env for name in EARLY_STOP_ENV) or not stopped_early(spec.trial_dir):
        return None
    if done.status is TrialStatus.FAILED and done.failure_class in AFTER_STOP:
        return done.error or "an error"
    try:
        outcome = trial_records.harness_outcome(spec.trial_dir)
    except BadTrialFile:
        return None
    after = outcome.failed_after_metric if outcome is not None else None
    if done.status is TrialStatus.SUCCEEDED and after is not None:
        return after.error or "an error"
    return None


def set_aside(trial_dir: Path, label: str) -> Path:
    """The folder of an attempt moves to ``<n>.<label>``; the next attempt starts from its inputs (its source,
    params, answers and files of values) as mlops wrote them, read by the trial reader: never a link the
    attempt left (BadTrialFile when one stands in their place)."""
    aside = trial_dir.with_name(f"{trial_dir.name}.{label}")
    trial_files.check_inputs(trial_dir)
    shutil.rmtree(aside, ignore_errors=True)
    trial_dir.rename(aside)
    trial_dir.mkdir()
    trial_files.copy_inputs(aside, trial_dir)
    return aside
