"""Job 5: the result of each run (leaderboard, best source and its diff), reported and sent."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from jobs.args import job_main, job_parser
from jobs.pipeline import Context, current_runs, send_notifications, step_report
from mlops.config import Settings
from mlops.domain import RunStatus


def extra(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-notify",
        action="store_true",
        help="write the reports and the page of all runs, send nothing (default: send too)",
    )
    parser.add_argument(
        "--notify-only",
        action="store_true",
        help="only send the notifications of the runs job 2 planned, each once (default: report too)",
    )


def body(settings: Settings, args: argparse.Namespace) -> int:
    ctx = Context.open(settings)
    runs = current_runs(ctx)
    if args.notify_only:
        send_notifications(ctx, runs)
        return 0
    step_report(ctx, runs, notify=not args.no_notify)
    return 1 if any(ctx.ledger.run(r.id).status is RunStatus.FAILED for r in runs) else 0


EXAMPLE = "python -m jobs.job5_notify --workspace .mlops --no-notify"


def parser() -> argparse.ArgumentParser:
    return job_parser(__doc__ or "", extra, EXAMPLE)


def main(argv: Sequence[str] | None = None) -> int:
    return job_main(parser(), body, argv)


if __name__ == "__main__":
    sys.exit(main())
