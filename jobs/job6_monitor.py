"""Job 6: the monitor. Finds runs of this workspace whose orchestrator died and carries them on.

A run's own orchestrator (``mlops run`` or Jenkins job 4) already restarts its dead trainings; this job
covers the orchestrator itself dying: it takes over each unfinished run whose owner process is gone,
re-attaches to trainings that are still going and starts dead ones again from their checkpoints.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from jobs.args import job_main, job_parser
from jobs.pipeline import Context, step_monitor
from mlops.config import Settings


def extra(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--once", action="store_true", help="check once and exit (default: keep checking)")
    parser.add_argument(
        "--interval", type=float, default=2.0, metavar="SECONDS", help="seconds between checks (default 2)"
    )


def body(settings: Settings, args: argparse.Namespace) -> int:
    return step_monitor(Context.open(settings), once=args.once, interval_s=args.interval)


EXAMPLE = "python -m jobs.job6_monitor --once --workspace .mlops"


def parser() -> argparse.ArgumentParser:
    return job_parser(__doc__ or "", extra, EXAMPLE)


def main(argv: Sequence[str] | None = None) -> int:
    return job_main(parser(), body, argv)


if __name__ == "__main__":
    sys.exit(main())
