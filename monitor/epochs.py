"""A launch's epochs, read from the harness's structured events as they are written, and the pruning check
asked after each."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from mlops import trial_files
from mlops_harness.protocol import EVENTS_FILE, Event, EventKind


def epoch_of(event: Event) -> tuple[int, dict[str, float]] | None:
    """An epoch event's epoch (from 1) and its logs; None for any other event."""
    if event.kind is not EventKind.EPOCH:
        return None
    logs = event.get("logs")
    try:
        epoch = int(event.get("epoch"))
        values = {str(k): float(v) for k, v in (logs if isinstance(logs, dict) else {}).items()}
    except (TypeError, ValueError):
        return None
    return epoch, values


def events_size(trial_dir: Path) -> int:
    """Where the events of a launch about to start (or attached to now) begin in the trial's events file
    (0 when there is none, or a link or anything else stands in its place: never followed)."""
    return trial_files.size(trial_dir, EVENTS_FILE)


# Asked after every epoch with (epoch, logs): why to stop the trial as pruned, or None to go on.
PruneCheck = Callable[[int, dict[str, float]], str | None]


class Pruned(threading.Event):
    """Set when the trial was stopped as pruned; ``why`` says what its check said."""

    why = ""
