"""Job 2: what the pushed code trains, and one run per training entry point (found, to resume, or made).

Each entry point's run lock is taken before anything is written (:mod:`jobs.runlock`): a second command of
the same commit and script while another process works on it stops here (exit 3), with no run, no trial
and no ``current-runs.json`` of its own.
"""

from __future__ import annotations

import json
from pathlib import Path

from jobs.context import Context
from mlops.classify import Classification, candidate_files, classify_file, find_entry_points
from mlops.domain import Kind, RunStatus
from mlops.errors import LedgerError, SourceError
from mlops.layout import RunLayout, WorkspaceLayout
from mlops.ledger import RunRecord
from mlops.lineage import branch_of, record
from mlops.notebook import notebook_to_script
from mlops.project import mapped_data, read_project
from mlops.pull import Checkout
from mlops_harness.protocol import write_atomic


def step_plan(ctx: Context, checkout: Checkout, runtime_name: str, new_run: bool = False) -> list[RunRecord]:
    """Classify the pushed code and create (or find, to resume) one run per training entry point."""
    ctx.progress.job(2, "classify")
    code = checkout.code_dir
    mapped_data(code, ctx.settings.data, ctx.settings.workspace, ctx.settings.data_roots)  # before any trial
    if checkout.entry:
        entries = [Path(checkout.entry).relative_to(checkout.subdir or ".")]
    else:
        entries = find_entry_points(code)
        # A file that does not parse cannot show that it trains; it is most likely the model, broken.
        broken = [p.relative_to(code) for p in candidate_files(code) if classify_file(p, root=code).error]
        entries += [rel for rel in broken if rel not in entries]
    if not entries:
        if not candidate_files(code):
            raise SourceError(f"no Python file or notebook in {checkout.source} at {checkout.commit[:12]}")
        raise SourceError(
            f"no file in {checkout.source} at {checkout.commit[:12]} trains a model "
            "(name the entry points in mlops.yaml)"
        )
    for entry in entries:  # before anything is written: another process may be running one of them
        ctx.hold_script(checkout.source, checkout.commit, entry.as_posix())
    runs: list[RunRecord] = []
    errors: list[str] = []
    for entry in entries:
        result = classify_file(code / entry, root=code)
        script = entry.as_posix()
        if result.error:
            line = f"{script}:{result.error_line}" if result.error_line else script
            ctx.progress.info(f"   {line}: {result.error}")
            errors.append(f"{line}: {result.error}")
        else:
            why = "; ".join(f"line {r.line}: {r.text}" for r in result.reasons[:3])
            ctx.progress.info(
                f"   {script}: {result.kind} ({result.family}, {result.framework}, {result.api}) "
                f"-> image {result.image}; {why}"
            )
        runs.append(_find_or_create_run(ctx, checkout, script, result, runtime_name, new_run))
    write_atomic(WorkspaceLayout(ctx.settings.workspace).current_runs, json.dumps([r.id for r in runs]))
    if errors and all(r.status is RunStatus.FAILED for r in runs):
        raise SourceError("; ".join(errors))
    return runs


def current_runs(ctx: Context) -> list[RunRecord]:
    """The runs job 2 planned last (the Jenkins jobs 3 to 5 work on them)."""
    path = WorkspaceLayout(ctx.settings.workspace).current_runs
    if not path.exists():
        raise LedgerError(f"no runs planned in {ctx.settings.workspace} (run job 2 first)")
    return [ctx.ledger.run(run_id) for run_id in json.loads(path.read_text())]


def _find_or_create_run(
    ctx: Context, checkout: Checkout, script: str, result: Classification, runtime_name: str, new_run: bool
) -> RunRecord:
    s = ctx.settings
    identity = s.identity()
    if not new_run:
        for run in reversed(ctx.ledger.find_runs(checkout.source, checkout.commit, script)):
            earlier = run.settings.identity()
            if run.status is RunStatus.RUNNING:
                if earlier != identity:
                    diff = ", ".join(
                        f"{k} {earlier[k]} -> {identity[k]}" for k in identity if earlier[k] != identity[k]
                    )
                    raise LedgerError(
                        f"run {run.id} ({script} at {checkout.commit[:12]}) is unfinished and was started with "
                        f"other settings ({diff}); run with the same settings to resume it, or --new-run"
                    )
                ctx.progress.info(f"   resuming run {run.id}")
                return run
            if earlier == identity:
                ctx.progress.info(
                    f"   {script} at {checkout.commit[:12]} was already tuned: run {run.id} "
                    f"({run.status.value}); --new-run to train it again"
                )
                return run
    kind = result.kind.value if result.kind else None
    name = Path(script).stem.replace(" ", "_")
    run = ctx.ledger.create_run(
        name=name,
        source=checkout.source,
        ref=checkout.ref,
        commit=checkout.commit,
        author=checkout.author,
        code_dir=checkout.code_dir,
        script=script,
        classification=result.to_json(),
        runtime=runtime_name,
        metric=s.cluster_metric.value if kind == Kind.KMEANS.value else "accuracy",
        target=s.target,
        strategy=s.strategy.value,
        max_trials=s.max_trials,
        settings=s.for_run(),
        runs_dir=s.runs_dir,
    )
    record(ctx.ledger, run, branch_of(checkout))  # its script's previous run, renames followed
    if result.error:
        where = f"{script}:{result.error_line}" if result.error_line else script
        ctx.ledger.finish_run(run.id, RunStatus.FAILED, f"{where}: {result.error}")
        return ctx.ledger.run(run.id)
    text = (checkout.code_dir / script).read_text(encoding="utf-8", errors="replace")
    if script.endswith(".ipynb"):
        text = notebook_to_script(text)
    write_atomic(RunLayout(run.dir).original, text)
    answers = read_project(checkout.code_dir).inputs
    if answers:
        write_atomic(RunLayout(run.dir).inputs, json.dumps({"answers": [str(a) for a in answers]}))
    return run
