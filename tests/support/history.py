"""A week of runs written straight into a real ledger: cheap (nothing trains), in every state a run can end
in, for tests of what shows all runs at once. ``recorded.py`` records real trainings instead."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import mlops.ledger.base
from mlops.domain import RunStatus, TrialStatus
from mlops.ledger import Ledger, RunRecord, TrialEnd
from tests.support.repos import git, make_repo

DAY = 86400.0


@dataclass
class Past:
    script: str
    kind: str
    family: str
    status: RunStatus
    metrics: list[float | None]  # one per trial; None: the trial failed
    days_ago: float
    minutes: float  # how long it took (or has been going, for a running run)
    reason: str = ""
    metric: str = "accuracy"
    target: float = 0.8
    max_trials: int = 5
    restarts: dict[int, int] = field(default_factory=dict)  # trial -> restarts
    source: str = "git@github.com:example/models.git"


WEEK = [
    Past("cnn.py", "cnn", "convolutional", RunStatus.REACHED, [0.71, 0.93], 6.2, 14),
    Past("ann.py", "ann", "dense", RunStatus.EXHAUSTED, [0.52, 0.61, None, 0.74, 0.7], 5.4, 31, restarts={2: 1},
         reason="5 trials used, best 0.7400, target 0.8 not reached"),
    Past("kmeans.py", "kmeans", "clustering", RunStatus.EXHAUSTED, [0.35, 0.58, 0.51], 5.1, 2, metric="silhouette",
         max_trials=3, reason="3 trials used, best 0.5800, target 0.8 not reached", source="/home/ada/models"),
    Past("broken.py", "other", "unknown", RunStatus.FAILED, [None], 4.3, 1,
         reason="the code as pushed does not parse: SyntaxError: invalid syntax (broken.py, line 12)"),
    Past("cnn.py", "cnn", "convolutional", RunStatus.REACHED, [0.78, 0.85], 3.0, 22, restarts={1: 2}),
    Past("churn.py", "other", "forest", RunStatus.REACHED, [0.81], 2.2, 1, source="/home/ada/churn"),
    Past("net.py", "ann", "dense", RunStatus.FAILED, [None, None, None], 1.9, 6,
         reason="3 trials failed in a row and none produced a metric"),
    Past("cnn.py", "cnn", "convolutional", RunStatus.EXHAUSTED, [0.64, 0.79, 0.77], 1.1, 48, max_trials=3,
         reason="the wall-time budget of 45 min is used"),
    Past("digits.py", "ann", "dense", RunStatus.REACHED, [0.97], 0.3, 1),
    Past("big_cnn.py", "cnn", "convolutional", RunStatus.RUNNING, [0.66, None], 0.0, 20),
]  # fmt: skip


class Clock:
    """The ledger's clock, set by hand: the runs of a week recorded in a second."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


def record_week(workspace: Path, now: float | None = None) -> tuple[Ledger, list[RunRecord]]:
    """The ten runs of ``WEEK`` in a ledger of ``workspace``, each at its day, oldest first."""
    now = time.time() if now is None else now
    repo = make_repo(workspace.parent / "models", {"cnn.py": "print('a model')\n"})
    commit = git(repo, "rev-parse", "HEAD")
    ledger = Ledger(workspace / "ledger.db")
    clock = Clock(now)
    runs = []
    with mock.patch.object(mlops.ledger.base, "time", clock):
        for past in WEEK:
            clock.now = now - past.days_ago * DAY - past.minutes * 60
            run = ledger.create_run(
                name=past.script.removesuffix(".py"),
                source=past.source,
                ref="main",
                commit=commit,
                author="Ada Scientist <ada@example.com>",
                code_dir=repo,
                script=past.script,
                classification={"kind": past.kind, "family": past.family, "framework": "keras"},
                runtime="docker",
                metric=past.metric,
                target=past.target,
                strategy="tpe",
                max_trials=past.max_trials,
                settings={"seed": 0},
                runs_dir=workspace / "runs",
            )
            step = past.minutes * 60 / (len(past.metrics) + 1)
            for number, metric in enumerate(past.metrics):
                clock.now += step
                ledger.add_trial(run.id, number, [], [] if number == 0 else ["more units"], number)
                ledger.start_trial(run.id, number, {"pid": 1})
                for _ in range(past.restarts.get(number, 0)):
                    ledger.start_trial(run.id, number, {"pid": 1}, restart=True, reason="killed")
                last_of_a_running_run = past.status is RunStatus.RUNNING and number == len(past.metrics) - 1
                if last_of_a_running_run:
                    continue
                status = TrialStatus.SUCCEEDED if metric is not None else TrialStatus.FAILED
                ledger.finish_trial(run.id, number, TrialEnd(status, metric_name=past.metric, metric=metric, duration_s=step, error=None if metric is not None else "ValueError: bad shape"))  # fmt: skip
            scored = [(m, n) for n, m in enumerate(past.metrics) if m is not None]
            reason = past.reason
            if scored:
                best, number = max(scored)
                ledger.update_run(
                    run.id, "best", best_trial=number, best_metric=best, baseline_metric=past.metrics[0]
                )
                reason = reason or f"trial {number} reached {best:.4f} >= target {past.target:g}"
            if past.status is not RunStatus.RUNNING:
                clock.now = now - past.days_ago * DAY
                ledger.finish_run(run.id, past.status, reason)
            runs.append(ledger.run(run.id))
    return ledger, runs
