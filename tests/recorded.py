"""A run recorded in a real ledger the way the tuning loop records one, trial by trial.

Each trial's variant is trained by the real harness in its trial folder (in parallel, to keep the tests
short), and its result is read back with the same code the supervisor uses, so metrics.json, outcome.json
and log.txt are what a real run leaves. The tweaks are given here instead of proposed by a strategy, so a
test can choose a trial that fails or is skipped.
"""

from __future__ import annotations

import difflib
import os
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

from mlops.domain import EndReason, RunStatus, TrialStatus
from mlops.ledger import Ledger, RunRecord
from mlops.runtime.base import Outcome
from mlops.trial import read_result
from mlops_harness.protocol import LOG_FILE
from tests.conftest import HARNESS, git, make_repo


@dataclass
class Variant:
    source: str | None  # None: the trial is skipped before training (with ``skipped`` as the reason)
    changes: list[str] = field(default_factory=list)
    tweaks: list = field(default_factory=list)
    skipped: str = ""


def record_run(
    root: Path,
    script: str,
    variants: list[Variant],
    classification: dict[str, str],
    target: float = 0.8,
) -> tuple[Ledger, RunRecord]:
    original = textwrap.dedent(variants[0].source or "")
    repo = make_repo(root / "repo", {script: original})
    ledger = Ledger(root / "ws" / "ledger.db")
    run = ledger.create_run(
        name=Path(script).stem,
        source=str(repo),
        ref="main",
        commit=git(repo, "rev-parse", "HEAD"),
        author="Ada Scientist <ada@example.com>",
        code_dir=repo,
        script=script,
        classification=classification,
        runtime="local",
        metric=None,
        target=target,
        strategy="tpe",
        max_trials=len(variants),
        settings={"seed": 0},
        runs_dir=root / "ws" / "runs",
    )
    (run.dir / "original.py").write_text(original, encoding="utf-8")
    launched = {}
    for number, variant in enumerate(variants):
        folder = run.dir / "trials" / str(number)
        folder.mkdir(parents=True)
        status = TrialStatus.SKIPPED if variant.source is None else TrialStatus.PENDING
        ledger.add_trial(
            run.id, number, variant.tweaks, variant.changes, number, status, variant.skipped or None
        )
        if variant.source is None:
            continue
        (folder / "source.py").write_text(textwrap.dedent(variant.source), encoding="utf-8")
        command = [sys.executable, str(HARNESS), "--code", str(repo), "--script", script]
        command += ["--source", str(folder / "source.py"), "--out", str(folder)]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", MLOPS_SEED=str(number))
        with (folder / LOG_FILE).open("w") as log:
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )
        ledger.start_trial(run.id, number, {"pid": process.pid})
        launched[number] = (process, time.time())
    for number, (process, started) in launched.items():
        code = process.wait(timeout=600)
        outcome = Outcome(EndReason.EXITED, exit_code=code, duration_s=time.time() - started)
        result = read_result(run.dir / "trials" / str(number), outcome)
        ledger.finish_trial(
            run.id,
            number,
            result.status,
            metric_name=result.metric_name,
            metric=result.metric,
            metric_source=result.metric_source,
            end_reason=outcome.reason.value,
            exit_code=code,
            error=result.error,
            error_file=result.error_file,
            error_line=result.error_line,
            epochs=result.epochs,
            duration_s=outcome.duration_s,
        )
    return ledger, finish(ledger, run, original)


def finish(ledger: Ledger, run: RunRecord, original: str) -> RunRecord:
    """What the loop's end does: the best trial, its source and diff, the run's status."""
    trials = ledger.trials(run.id)
    scored = [t for t in trials if t.metric is not None]
    best = max(scored, key=lambda t: (t.metric, -t.number), default=None)
    if best is None:
        ledger.finish_run(run.id, RunStatus.FAILED, "no trial produced a metric")
        return ledger.run(run.id)
    best_source = (run.dir / "trials" / str(best.number) / "source.py").read_text(encoding="utf-8")
    (run.dir / "best.py").write_text(best_source, encoding="utf-8")
    diff = difflib.unified_diff(
        original.splitlines(keepends=True),
        best_source.splitlines(keepends=True),
        fromfile=f"a/{run.script}",
        tofile=f"b/{run.script}",
    )
    (run.dir / "best.diff").write_text("".join(diff), encoding="utf-8")
    ledger.update_run(
        run.id,
        f"best trial {best.number}",
        best_trial=best.number,
        best_metric=best.metric,
        baseline_metric=trials[0].metric,
        metric=best.metric_name,
    )
    if best.metric >= run.target:
        ledger.finish_run(run.id, RunStatus.REACHED, f"trial {best.number} reached {best.metric:.4f}")
    else:
        ledger.finish_run(run.id, RunStatus.EXHAUSTED, f"{len(trials)} trials used, target not reached")
    return ledger.run(run.id)
