"""Job 5: the results of the runs, for the person and for what watches (a leaderboard, the report and its
JUnit file, the model's line, the notifications, the MLflow mirror, the page of all runs)."""

from __future__ import annotations

from typing import Any

from jobs.context import Context
from mlops.index_page import write_index
from mlops.layout import RunLayout
from mlops.ledger import RunRecord
from mlops.mlflow_log import log_run_once
from mlops.model_store import check_summary, read_card
from mlops.notify import Notifier, notify_run
from mlops.progress import Progress, Said
from mlops.pull import publish_best
from mlops.regression import Comparison, compare
from mlops.report import write_junit, write_report
from mlops_harness.protocol import MODEL_CARD


def leaderboard(ctx: Context, run: RunRecord) -> None:
    rows = []
    for t in ctx.ledger.trials(run.id):
        metric = f"{t.metric:.4f}" if t.metric is not None else "-"
        changes = "; ".join(t.changes) if t.changes else "as pushed"
        duration = f"{t.duration_s:.1f}s" if t.duration_s is not None else "-"
        mark = "*" if t.number == run.best_trial else ""
        rows.append([f"{t.number}{mark}", t.status.value, metric, duration, t.restarts, changes])
    ctx.progress.table(
        f"run {run.id}: {run.script} ({run.kind}) - {run.status.value}: {run.reason}",
        ["trial", "status", run.metric or "metric", "time", "restarts", "changes"],
        rows,
    )


def step_report(ctx: Context, runs: list[RunRecord], notify: bool = True) -> None:
    ctx.progress.job(5, "results")
    tracking_uri = ctx.settings.environment.mlflow_tracking_uri
    notifier = Notifier.from_env(ctx.settings.environment.variables) if notify else None
    for run in runs:
        ctx.hold_run(run)  # never a report in the middle of another process's run of it
    for run in runs:
        run = ctx.ledger.run(run.id)
        leaderboard(ctx, run)
        layout = RunLayout(run.dir)
        if run.best_trial is not None and layout.best_diff.exists():
            ctx.progress.info(f"   best source: {layout.best_source} (diff: {layout.best_diff})")
            # The answers to its prompts and the files of values it read (best.inputs.yaml, best.input.txt).
            kept = [p.name for p in layout.best_kept()]
            if kept:
                ctx.progress.info(f"   best inputs: {', '.join(kept)} (beside {layout.best_source.name})")
        model_line(ctx.progress, run, read_card(run))
        comparison_line(ctx.progress, compare(ctx.ledger, run))
        report, junit = write_report(ctx.ledger, run.id), write_junit(ctx.ledger, run.id)
        ctx.progress.info(f"   report: {report} (JUnit: {junit.name})")
        lines: list[Said | None] = []
        if notifier is not None:
            lines += [Said(f"   {line}") for line in notify_run(ctx.ledger, run, notifier)]
        if tracking_uri:
            lines.append(log_run_once(ctx.ledger, run, tracking_uri))
        if ctx.settings.commit_best:
            committed = publish_best(ctx.ledger, run, ctx.settings.workspace)
            lines.append(Said(committed) if committed is not None else None)
        for said in lines:
            if said is not None:
                ctx.progress.say(said)
    # The page of all runs is a view of the ledger: when it cannot be written, the next run (or
    # `mlops history --html`) writes it; the run's own results are not lost for it.
    try:
        ctx.progress.info(f"   all runs: {write_index(ctx.ledger, ctx.settings.runs_dir)}")
    except OSError as e:
        ctx.progress.warn(f"could not write the page of all runs: {e}")


def comparison_line(progress: Progress, comparison: Comparison | None) -> None:
    """The run against its script's previous commit: a regression is a warning, an improvement said."""
    if comparison is None:
        return
    if comparison.regressed:
        progress.warn(f"run {comparison.run}: {comparison.sentence()}")
    else:
        progress.info(f"   {comparison.sentence()}")


def model_line(progress: Progress, run: RunRecord, card: dict[str, Any] | None) -> None:
    """Where the run's model is and whether it loaded; or why there is none."""
    if card is None:
        return
    if not card.get("file"):
        progress.warn(f"run {run.id}: no model: {card.get('error')}")
        return
    passed, said = check_summary(card)
    path = RunLayout(run.dir).model / str(card["file"])
    if passed:
        progress.info(f"   model: {path} ({said}; card: {MODEL_CARD})")
    else:
        progress.warn(f"run {run.id}: model {path} {said}")


def send_notifications(ctx: Context, runs: list[RunRecord]) -> None:
    """Job 5 --notify-only: the notifications of the runs, each sent once."""
    notifier = Notifier.from_env(ctx.settings.environment.variables)
    for run in runs:
        for line in notify_run(ctx.ledger, ctx.ledger.run(run.id), notifier):
            ctx.progress.info(f"   {line}")
