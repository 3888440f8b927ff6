"""Job 5: the result of each run (leaderboard, best source and its diff), reported and sent."""

import sys

from jobs._entry import entry
from jobs.pipeline import current_runs, step_report


def body(ctx, args):  # noqa: ANN001, ANN201
    runs = current_runs(ctx)
    step_report(ctx, runs)
    return 1 if any(r.status.value == "failed" for r in runs) else 0


def main(argv=None) -> int:  # noqa: ANN001
    return entry(__doc__, body, None, argv)


if __name__ == "__main__":
    sys.exit(main())
