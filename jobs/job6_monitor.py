"""Job 6: the monitor. Finds runs of this workspace whose orchestrator died and carries them on.

A run's own orchestrator (``mlops run`` or Jenkins job 4) already restarts its dead trainings; this job
covers the orchestrator itself dying: it takes over each unfinished run whose owner process is gone,
re-attaches to trainings that are still going and starts dead ones again from their checkpoints.
"""

from __future__ import annotations

import sys
import time

from jobs._entry import entry
from jobs.pipeline import Context, choose_runtime, step_train
from mlops.config import Settings
from mlops.domain import RunStatus


def orphaned_runs(ctx: Context) -> list:
    runs = []
    for run in ctx.ledger.runs():
        if run.status is not RunStatus.RUNNING:
            continue
        if not ctx.ledger.owner_alive(ctx.ledger.owner(run.id)):
            runs.append(run)
    return runs


def monitor(settings: Settings, once: bool = False, interval: float = 2.0, ctx: Context | None = None) -> int:
    ctx = ctx or Context.open(settings)
    runtime = None
    ctx.progress.job(6, f"monitor {settings.workspace}")
    while True:
        orphans = orphaned_runs(ctx)
        if orphans:
            runtime = runtime or choose_runtime(ctx)
            ctx.progress.info(
                f"   taking over {len(orphans)} run(s) whose orchestrator is gone: "
                + ", ".join(r.id for r in orphans)
            )
            step_train(ctx, orphans, runtime, only_baseline=False)
        if once:
            return 0
        runtime = runtime or choose_runtime(ctx)
        deaths = getattr(runtime, "deaths", None)
        if deaths is None:  # local processes: look again after the interval
            time.sleep(interval)
            continue
        # Docker: follow the engine's event stream, so a death is seen the moment it happens.
        for death in deaths(interval):
            code = f" (exit code {death['exit']})" if death["exit"] else ""
            ctx.progress.info(f"   {death['event']}: run {death['run']} trial {death['trial']}{code}")


def body(ctx, args):  # noqa: ANN001, ANN201
    return monitor(ctx.settings, once=args.once, interval=args.interval, ctx=ctx)


def extra(parser):  # noqa: ANN001, ANN201
    parser.add_argument("--once", action="store_true", help="check once and exit")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between checks")


def main(argv=None) -> int:  # noqa: ANN001
    return entry(__doc__, body, extra, argv)


if __name__ == "__main__":
    sys.exit(main())
