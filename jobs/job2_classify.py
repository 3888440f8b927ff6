"""Job 2: classify the pulled code from its syntax tree, choose each script's image, plan one run per script."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from jobs.args import job_main, job_parser
from jobs.pipeline import Context, choose_runtime, ensure_runtime_ready, environments, last_pull, step_plan
from mlops.config import Settings


def extra(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--new-run",
        action="store_true",
        help="train again even if this commit was tuned (default: keep its earlier result)",
    )


def body(settings: Settings, args: argparse.Namespace) -> int:
    ctx = Context.open(settings)
    runtime = choose_runtime(ctx)
    runs = step_plan(ctx, last_pull(settings), runtime.name, new_run=args.new_run)
    ensure_runtime_ready(runtime, runs, ctx.progress)
    runs = environments(ctx, runtime).prepare(runs)
    for run in runs:
        print(run.id)
    return 0


EXAMPLE = "python -m jobs.job2_classify --workspace .mlops --runtime docker"


def parser() -> argparse.ArgumentParser:
    return job_parser(__doc__ or "", extra, EXAMPLE)


def main(argv: Sequence[str] | None = None) -> int:
    return job_main(parser(), body, argv)


if __name__ == "__main__":
    sys.exit(main())
