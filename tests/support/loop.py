"""The tuning loop on a real ledger and real codemods, with a fake executor in place of training.

The executor records each trial as the supervisor would after a training, scoring the variant from its
source, so tests of the loop and of the strategies run in milliseconds.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from mlops.domain import Kind, TrialStatus
from mlops.layout import ORIGINAL, SOURCE, RunLayout
from mlops.ledger import Ledger, RunRecord, TrialEnd, TrialRecord
from mlops.progress import Progress
from mlops.runtime.base import Limits, TrialSpec
from mlops_harness.protocol import FailureClass
from tweak.loop import Budget, Tuner


class FakeExecute:
    """The supervisor's ``execute``: records each trial as the ledger would after a training."""

    def __init__(
        self,
        ledger: Ledger,
        score: Callable[[str], float],
        fail: dict[int, str] | set[int] = frozenset(),
    ) -> None:
        self.ledger = ledger
        self.score = score
        self.fail = fail
        self.ran: list[int] = []

    def measure(self, spec: TrialSpec) -> float:
        """The trial's metric (what training would have measured)."""
        return self.score(spec.source_file.read_text())

    def __call__(self, run: RunRecord, trial: TrialRecord, spec: TrialSpec, prune) -> TrialRecord:
        self.ran.append(trial.number)
        self.ledger.start_trial(run.id, trial.number, {"runtime": "fake"})
        if trial.number in self.fail:
            cls = FailureClass(self.fail.get(trial.number, "code") if isinstance(self.fail, dict) else "code")
            self.ledger.finish_trial(
                run.id,
                trial.number,
                TrialEnd(TrialStatus.FAILED, error="ValueError: boom", failure_class=cls, hint="fix it"),
            )
        else:
            value = self.measure(spec)
            self.ledger.finish_trial(
                run.id, trial.number, TrialEnd(TrialStatus.SUCCEEDED, metric_name="accuracy", metric=value)
            )
        return self.ledger.trial(run.id, trial.number)


def new_run(
    tmp_path: Path,
    ledger: Ledger,
    source: str,
    kind: Kind,
    framework: str,
    strategy: str = "tpe",
    max_trials: int = 5,
    target: float = 0.8,
) -> RunRecord:
    """A run of ``source`` (as pushed, in the run's folder) recorded in the ledger, with no trial yet."""
    run = ledger.create_run(
        name=kind.value,
        source=str(tmp_path),
        ref=None,
        commit="c" * 40,
        author="tests",
        code_dir=tmp_path,
        script="model.py",
        classification={"kind": kind.value, "framework": framework, "image": "mlops-keras3"},
        runtime="local",
        metric="accuracy",
        target=target,
        strategy=strategy,
        max_trials=max_trials,
        settings={"seed": 0},
        runs_dir=tmp_path / "runs",
    )
    (run.dir / ORIGINAL).write_text(source)
    return run


def spec_for(run: RunRecord, number: int) -> TrialSpec:
    folder = RunLayout(run.dir).trial(number).dir
    return TrialSpec(run.id, number, run.code_dir, run.script, folder / SOURCE, folder, limits=Limits())


def tuner(
    ledger: Ledger, execute: FakeExecute, max_trials: int = 5, parallel: int = 1, target: float = 0.8
) -> Tuner:
    budget = Budget(target=target, max_trials=max_trials, max_minutes=None, parallel=parallel)
    return Tuner(ledger, Progress(io.StringIO()), execute, spec_for, budget)
