"""The metric a trial had measured when its launch was ended from outside (its time, memory or disk ran
out, or it was killed), before the harness could choose one.

The harness writes an event for every measurement the script makes (``measured``: evaluate, score, a
metric function) and for every epoch; they are on disk the moment they are made, so they outlive a kill.
The choice follows the harness's own (``mlops_harness/metrics.py``): the last accuracy (or R²) the script
measured, else the last clustering score, else the last fit's last epoch, its validation accuracy before
its training accuracy. A script that loops ``while accuracy < 0.9`` around ``fit`` and ``evaluate`` has
the accuracy of its last round when its time runs out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlops import trial_files
from mlops.trial_records import live_events
from mlops_harness.protocol import EVENTS_FILE, Event, EventKind, accuracy_key


@dataclass(frozen=True)
class Measured:
    name: str
    value: float
    source: str


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value == value else None  # NaN is not a measurement


def _from_measurements(events: list[Event]) -> Measured | None:
    found: dict[str, Measured] = {}  # the last of each name
    for event in events:
        if event.kind is not EventKind.MEASURED:
            continue
        name, value, source = event.get("name"), _number(event.get("value")), event.get("source")
        if isinstance(name, str) and value is not None:
            found[name] = Measured(name, value, str(source or name))
    for names in (("accuracy", "r2"), ("ari", "silhouette")):
        last = [m for m in found.values() if m.name in names]
        if last:
            return last[-1]
    return None


def _from_epochs(events: list[Event]) -> Measured | None:
    rows: list[tuple[int, int, dict[str, float]]] = []
    for event in events:
        if event.kind is not EventKind.EPOCH:
            continue
        logs = event.get("logs")
        fit, epoch = event.get("fit"), event.get("epoch")
        if isinstance(logs, dict) and isinstance(fit, int) and isinstance(epoch, int):
            numbers = {str(k): v for k, v in logs.items() if _number(v) is not None}
            rows.append((fit, epoch, numbers))
    if not rows:
        return None
    last_fit = max(fit for fit, _, _ in rows)
    _, _, logs = max((r for r in rows if r[0] == last_fit), key=lambda r: r[1])
    for prefix, source in (("val_", "val_accuracy"), ("", "train_accuracy")):
        key = accuracy_key(logs, prefix)
        if key:
            return Measured("accuracy", float(logs[key]), source)
    return None


def measured_before_end(trial_dir: Path) -> Measured | None:
    """The metric the trial's events say the script measured last (see the module's docstring), or None;
    its events file is read by the trial reader (no link followed; a malformed event left out)."""
    try:
        text = trial_files.read_text(trial_dir, EVENTS_FILE)
    except trial_files.BadTrialFile:
        return None
    events = list(live_events((text or "").splitlines()))
    # Only this launch's: the events of the last launch start after its last STARTED event.
    starts = [i for i, e in enumerate(events) if e.kind is EventKind.STARTED]
    events = events[starts[-1] :] if starts else events
    return _from_measurements(events) or _from_epochs(events)
