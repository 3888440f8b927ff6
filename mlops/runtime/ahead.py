"""Trials started ahead on the local runtime: the bookkeeping of the harnesses waiting for their trial.

Trials run one after the other, each in a process of its own that imports TensorFlow (3 to 5 s) before its
first epoch. So while trial N trains, the tuner asks for trial N+1's process (``LocalRuntime.prestart``)
with the spec that trial will have: its sandbox, its environment, its interpreter, only its source not yet
written, since trial N's result decides it. The harness loads the script's libraries and waits for its
folder's ``GO_FILE`` (see ``mlops_harness/ahead.py``). ``run`` of a spec equal to the one it was started
with writes that file: the trial starts with its libraries loaded. Any other spec, a run that stops first,
or an orchestrator that dies (its keeper watches for that) ends the process; a trial started as usual then
takes its place.

A run's model load check (``mlops.load_check``) is started ahead the same way, once per run: it imports
the framework and waits for the run's model, which it is given when the run ends.

Its source is written after its sandbox is made, so it cannot be mounted read-only as a trial started as
usual has it: what the training does to that record is undone when it ends (:func:`put_back_source`).
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Any

from mlops import trial_files
from mlops.runtime.base import TrialSpec, open_log
from mlops.trial_files import BadTrialFile
from mlops_harness.protocol import LOG_FILE, write_atomic


@dataclass
class Waiting:
    """A harness started ahead of its trial, waiting for it."""

    spec: TrialSpec  # as it was started with: the trial must come with an equal one
    handle: Any  # the runtime's handle


class StartedAhead:
    """The harnesses waiting for their trial, by trial name (safe from several threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, Waiting] = {}

    def add(self, waiting: Waiting) -> None:
        """Keep ``waiting`` (the one of its trial started earlier was popped and ended first)."""
        with self._lock:
            self._waiting[waiting.spec.name] = waiting

    def pop(self, spec: TrialSpec) -> Waiting | None:
        with self._lock:
            return self._waiting.pop(spec.name, None)

    def take(self, spec: TrialSpec) -> tuple[Waiting | None, list[Waiting]]:
        """The one for ``spec``'s trial, and those of earlier trials of its run, which never came (skipped
        trials): to be ended."""
        with self._lock:
            mine = self._waiting.pop(spec.name, None)
            passed = [
                self._waiting.pop(name)
                for name, other in list(self._waiting.items())
                if other.spec.run_id == spec.run_id
                and not other.spec.check_model  # its run's load check waits for the run's end
                and other.spec.trial < spec.trial
            ]
        return mine, passed

    def clear(self) -> list[Waiting]:
        """The trials' harnesses waiting (popped); the load checks waiting stay, each let go of by its
        run (``LocalRuntime.end_ahead``)."""
        with self._lock:
            every = [w for w in self._waiting.values() if not w.spec.check_model]
            self._waiting = {n: w for n, w in self._waiting.items() if w.spec.check_model}
        return every

    def get(self, spec: TrialSpec) -> Waiting | None:
        with self._lock:
            return self._waiting.get(spec.name)


def wait_s(spec: TrialSpec) -> float:
    """How long a harness started ahead waits for its trial: the trial before it has as long (its time
    limit, and a restart's worth more); then it ends by itself."""
    return 2 * (spec.limits.timeout_s or 3600.0) + 60.0


def given_source(spec: TrialSpec) -> str | None:
    """The trial's source as its folder holds it, through the trial reader (None: there is none, or a link
    or anything else stands in its place)."""
    try:
        return trial_files.read_text(spec.source_file.parent, spec.source_file.name)
    except BadTrialFile:
        return None


def put_back_source(spec: TrialSpec, given: str) -> None:
    """The trial's source record as it was ``given``, whatever the training did to it (said in its log)."""
    path = spec.source_file
    if given_source(spec) == given:  # a link or anything else in its place is replaced, never followed
        return
    write_atomic(path, given)
    with contextlib.suppress(OSError), open(open_log(spec.trial_dir / LOG_FILE), "a") as log:  # no link
        log.write(f"[mlops] warning: the training changed {path.name}; it is put back as it was given\n")
