"""A run recorded in a real ledger with the real supervisor and local runtime, trial by trial.

The tweaks are given here instead of proposed by a strategy, so a test can choose a trial that fails or
is skipped; everything else is the code a real run uses: each trial's variant is trained by the harness
through ``Supervisor.execute`` on a ``LocalRuntime`` (in parallel, to keep the tests short), and the run is
ended by ``tweak.loop.finish_run`` (with the load check on the local runtime), so metrics.json,
outcome.json, events.jsonl, log.txt, best.py, best.diff and model/ are what a real run leaves.
"""

from __future__ import annotations

import io
import textwrap
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from mlops.domain import KeepModels, RunStatus, TrialStatus
from mlops.layout import ORIGINAL, SOURCE, RunLayout
from mlops.ledger import Ledger, RunRecord
from mlops.load_check import check_model
from mlops.model_store import ModelPolicy
from mlops.progress import Progress
from mlops.runtime.base import Limits, TrialSpec
from mlops.runtime.local import LocalRuntime
from monitor.supervisor import RestartPolicy, Supervisor
from tests.support.repos import git, make_repo
from tweak.codemods import Tweak
from tweak.loop import finish_run


@dataclass
class Variant:
    source: str | None  # None: the trial is skipped before training (with ``skipped`` as the reason)
    changes: list[str] = field(default_factory=list)
    tweaks: list[Tweak] = field(default_factory=list)
    skipped: str = ""


def record_run(
    root: Path,
    script: str,
    variants: list[Variant],
    classification: dict[str, str],
    target: float = 0.8,
    keep: KeepModels = KeepModels.BEST,
    keep_checkpoints: bool = False,
) -> tuple[Ledger, RunRecord]:
    original = textwrap.dedent(variants[0].source or "")
    repo = make_repo(root / "repo", {script: original})
    workspace = root / "ws"
    ledger = Ledger(workspace / "ledger.db")
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
        runs_dir=workspace / "runs",
    )
    (run.dir / ORIGINAL).write_text(original, encoding="utf-8")
    supervisor = Supervisor(LocalRuntime(workspace), ledger, Progress(io.StringIO()), RestartPolicy())
    pending = []
    for number, variant in enumerate(variants):
        folder = RunLayout(run.dir).trial(number).dir
        folder.mkdir(parents=True)
        status = TrialStatus.SKIPPED if variant.source is None else TrialStatus.PENDING
        tweaks = [t.to_json() for t in variant.tweaks]
        trial = ledger.add_trial(
            run.id, number, tweaks, variant.changes, number, status, variant.skipped or None
        )
        if variant.source is None:
            continue
        (folder / SOURCE).write_text(textwrap.dedent(variant.source), encoding="utf-8")
        spec = TrialSpec(
            run.id,
            number,
            repo,
            script,
            folder / SOURCE,
            folder,
            limits=Limits(timeout_s=600, memory_mb=4096),
            env={"MLOPS_SEED": str(number)},
        )
        pending.append((trial, spec))
    with ThreadPoolExecutor(max_workers=max(1, len(pending))) as pool:
        for future in [pool.submit(supervisor.execute, run, trial, spec) for trial, spec in pending]:
            future.result()
    best = max((t.metric for t in ledger.trials(run.id) if t.metric is not None), default=None)
    if best is None:
        status, reason = RunStatus.FAILED, "no trial produced a metric"
    elif best >= target:
        status, reason = RunStatus.REACHED, f"reached {best:.4f}"
    else:
        status, reason = RunStatus.EXHAUSTED, f"{len(variants)} trials used, target not reached"
    runtime = LocalRuntime(workspace)

    def check(run: RunRecord, folder: Path) -> dict:
        return check_model(runtime, run, folder, Limits(timeout_s=600, memory_mb=4096))

    models = ModelPolicy(keep, keep_checkpoints, check)
    return ledger, finish_run(ledger, run, original, status, reason, models)
