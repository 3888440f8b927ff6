"""What the script did, as observed by the hooks: scores, per-epoch logs, resumes, fitted clusterings.

The per-epoch history and the resumes are events (``protocol.EventKind``) appended to ``events.jsonl`` as
they happen; a restarted harness rebuilds both from that file, so they are kept across restarts.
"""

from __future__ import annotations

import math
import os
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from mlops_harness.model_saver import ModelTracker
from mlops_harness.protocol import (
    EVENTS_FILE,
    EventKind,
    EventWriter,
    StopReason,
    as_float,
    describe_stop,
    read_events,
)


def say(message: str) -> None:
    """A progress line for the person watching (the runtimes show lines that start with [mlops])."""
    stream = sys.__stdout__ or sys.stdout
    stream.write(f"[mlops] {message}\n")
    stream.flush()


class Recorder:
    """Observations made while the script runs; the metric is chosen from them at the end."""

    def __init__(self, out: Path, work_root: Path) -> None:
        self.out = out
        self.work_root = str(work_root.resolve())
        self.lock = threading.Lock()
        self.observations: list[dict[str, Any]] = []  # {"name", "value", "source"}
        self.fit_calls = 0
        self.fit_depth = 0
        self.history: list[dict[str, Any]] = []  # {"fit", "epoch", <log name>: number}, across restarts
        self.resumed: list[dict[str, int]] = []  # {"fit", "epoch"}: every restore, across restarts
        self.stopped: list[dict[str, Any]] = []  # the STOPPED events' fields: fits that stopped early
        self.inputs: list[dict[str, Any]] = []  # the INPUTS events' fields: what each fit trained on
        self.kmeans: list[dict[str, Any]] = []  # {"X", "model", "estimator"}
        self.datasets: list[tuple[Any, Any]] = []  # (X, y) returned by sklearn.datasets
        # The last classifier or regressor the user's code fitted: {"model", "X", "y", "seconds"} (the data
        # is the script's own, alive anyway); cross-validated if the script measures nothing
        self.last_fit: dict[str, Any] | None = None
        self.in_harness = False  # set while the harness itself computes (the WCSS curve)
        self.noted: set[str] = set()
        self.models = ModelTracker()  # which model was fitted on what, predicted what, measured where
        self._replay(out / EVENTS_FILE)
        self.events = EventWriter(out / EVENTS_FILE)

    def _replay(self, path: Path) -> None:
        """The history and resumes of earlier launches of this trial, from their events."""
        for event in read_events(path):
            try:
                if event.kind is EventKind.EPOCH:
                    row: dict[str, Any] = {"fit": int(event.get("fit")), "epoch": int(event.get("epoch"))}
                    row.update(_numbers(event.get("logs")))
                    self._add_row(row)
                elif event.kind is EventKind.RESUMED:
                    self.resumed.append({"fit": int(event.get("fit")), "epoch": int(event.get("epoch"))})
                elif event.kind is EventKind.STOPPED:
                    self._add_stop(dict(event.fields))
                elif event.kind is EventKind.INPUTS:
                    self._add_inputs(dict(event.fields))
            except (TypeError, ValueError):
                continue  # an event missing its fields: not ours to trust

    def _add_row(self, row: dict[str, Any]) -> None:
        """An epoch's row; an epoch trained again (after a restore) replaces its earlier row."""
        self.history = [
            h for h in self.history if not (h["fit"] == row["fit"] and h["epoch"] == row["epoch"])
        ]
        self.history.append(row)

    def note(self, message: str) -> None:
        """Say a note once per process (a script may call ``fit`` many times)."""
        if message not in self.noted:
            self.noted.add(message)
            say(f"note: {message}")

    def called_from_user(self, depth: int = 2) -> bool:
        """True when the hooked function was called by the user's code, perhaps through library code.

        Library frames (site-packages) between the hook and its caller are skipped, so a subclass that
        overrides ``score`` and calls ``super().score`` still counts; the first other frame decides.
        """
        frame: Any = sys._getframe(depth)
        while frame is not None and _is_library(frame.f_code.co_filename):
            frame = frame.f_back
        return frame is not None and os.path.realpath(frame.f_code.co_filename).startswith(self.work_root)

    def outermost_model(self, model: Any, depth: int = 2) -> Any:
        """The model the user's code called, when ``model`` was called by a library on its behalf.

        ``pipeline.score(X, y)`` runs the classifier's ``score`` from inside scikit-learn: the model that
        was measured is the pipeline (its preprocessing included), the ``self`` of the outermost library
        frame that is a model, not the classifier at its end.
        """
        frame: Any = sys._getframe(depth)
        while frame is not None and _is_library(frame.f_code.co_filename):
            owner = frame.f_locals.get("self")
            if owner is not None and hasattr(owner, "fit") and hasattr(owner, "predict"):
                model = owner
            frame = frame.f_back
        return model

    def measuring(self) -> Nesting:
        """A context in which nested metric calls (accuracy_score inside score) are not recorded again."""
        return Nesting()

    def observe(self, name: str, value: Any, source: str, model: Any = None) -> None:
        """A metric the script measured, and the model it measured (when known)."""
        try:
            number = float(value)
        except (TypeError, ValueError):
            return
        if math.isnan(number):
            return
        with self.lock:
            self.observations.append({"name": name, "value": number, "source": source})
            if model is not None:
                self.models.measured(len(self.observations) - 1, model)
            self.events.write(EventKind.MEASURED, name=name, value=number, source=source)

    def epoch(self, fit: int, epoch: int, epochs: int | None, logs: dict[str, Any]) -> None:
        values = _numbers(logs)
        row: dict[str, Any] = {"fit": fit, "epoch": epoch, **values}
        with self.lock:
            self._add_row(row)
            self.events.write(EventKind.EPOCH, fit=fit, epoch=epoch, epochs=epochs, logs=values)
        shown = " ".join(f"{k}={v:.4f}" for k, v in values.items() if k not in ("fit", "epoch"))
        total = f"/{epochs}" if epochs else ""
        say(f"epoch {epoch}{total} {shown}".rstrip())

    def resume(self, fit: int, epoch: int) -> None:
        """Fit number ``fit`` restored its checkpoint and goes on after ``epoch`` epochs."""
        with self.lock:
            self.resumed.append({"fit": fit, "epoch": epoch})
            self.events.write(EventKind.RESUMED, fit=fit, epoch=epoch)
        say(f"resumed fit {fit} from its checkpoint at epoch {epoch}")

    def stop(self, fit: int, epoch: int, why: StopReason, monitor: str, value: float | None, patience: int,
             best_epoch: int) -> None:  # fmt: skip
        """Fit number ``fit`` stopped after ``epoch`` epochs (before its last), for ``why``."""
        fields = {"fit": fit, "epoch": epoch, "why": why.value, "monitor": monitor, "value": value,
                  "patience": patience, "best_epoch": best_epoch}  # fmt: skip
        with self.lock:
            self._add_stop(fields)
            self.events.write(EventKind.STOPPED, **fields)
        say(f"fit {fit} stopped at epoch {epoch}: {describe_stop(fields)}")

    def _add_stop(self, fields: dict[str, Any]) -> None:
        self.stopped = [s for s in self.stopped if s.get("fit") != fields.get("fit")] + [fields]

    def fit_inputs(self, fit: int, x: Any) -> None:
        """The size, type and range of the array fit number ``fit`` trains on (nothing for other inputs:
        a generator, a dataset, a list of arrays)."""
        try:
            size = getattr(x, "size", 0) if hasattr(x, "dtype") and hasattr(x, "min") else 0
            if not isinstance(size, int) or size <= 0:
                return
            fields = {"fit": fit, "samples": int(x.shape[0]), "dtype": str(x.dtype),
                      "min": float(x.min()), "max": float(x.max())}  # fmt: skip
        except Exception:  # noqa: BLE001 (an array-like of a kind this cannot summarize: no evidence)
            return
        if any(i == fields for i in self.inputs):
            return  # the same fit, restarted
        with self.lock:
            self._add_inputs(fields)
            self.events.write(EventKind.INPUTS, **fields)

    def _add_inputs(self, fields: dict[str, Any]) -> None:
        self.inputs = [i for i in self.inputs if i.get("fit") != fields.get("fit")] + [fields]

    def checkpoint(self, fit: int, epoch: int, batch: int, name: str) -> None:
        self.events.write(EventKind.CHECKPOINT, fit=fit, epoch=epoch, batch=batch, name=name)


def _numbers(logs: Any) -> dict[str, float]:
    """The numeric entries of a logs dict (NaN and non-numbers left out)."""
    if not isinstance(logs, dict):
        return {}
    values = {str(k): as_float(v) for k, v in logs.items()}
    return {k: v for k, v in values.items() if v is not None}


def _is_library(filename: str) -> bool:
    return "site-packages" in filename or "dist-packages" in filename


class Nesting:
    """Counts hooked calls in progress on this thread; only the outermost one records."""

    local = threading.local()

    def __enter__(self) -> bool:
        depth: int = getattr(self.local, "depth", 0)
        self.local.depth = depth + 1
        return depth == 0

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.local.depth -= 1
