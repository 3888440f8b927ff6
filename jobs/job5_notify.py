"""Job 5: the result of each run (leaderboard, best source and its diff), reported and sent."""

import sys

from jobs._entry import entry
from jobs.pipeline import current_runs, send_notifications, step_report


def body(ctx, args):  # noqa: ANN001, ANN201
    runs = current_runs(ctx)
    if args.notify_only:
        for run in runs:
            send_notifications(ctx, ctx.ledger.run(run.id))
        return 0
    step_report(ctx, runs, notify=not args.no_notify)
    return 1 if any(r.status.value == "failed" for r in runs) else 0


def extra(parser):  # noqa: ANN001, ANN201
    parser.add_argument("--no-notify", action="store_true", help="write the report, send nothing")
    parser.add_argument("--notify-only", action="store_true", help="send the notifications of the last runs")


def main(argv=None) -> int:  # noqa: ANN001
    return entry(__doc__, body, extra, argv)


if __name__ == "__main__":
    sys.exit(main())
