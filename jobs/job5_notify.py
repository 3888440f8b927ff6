"""Job 5: the result of each run (leaderboard, best source and its diff), reported and sent."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from jobs.args import job_main
from jobs.pipeline import Context, current_runs, send_notifications, step_report
from mlops.config import Settings
from mlops.domain import RunStatus


def extra(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-notify", action="store_true", help="write the report, send nothing")
    parser.add_argument("--notify-only", action="store_true", help="send the notifications of the last runs")


def body(settings: Settings, args: argparse.Namespace) -> int:
    ctx = Context.open(settings)
    runs = current_runs(ctx)
    if args.notify_only:
        send_notifications(ctx, runs)
        return 0
    step_report(ctx, runs, notify=not args.no_notify)
    return 1 if any(ctx.ledger.run(r.id).status is RunStatus.FAILED for r in runs) else 0


def main(argv: Sequence[str] | None = None) -> int:
    return job_main(__doc__ or "", body, extra, argv)


if __name__ == "__main__":
    sys.exit(main())
