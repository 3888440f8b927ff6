"""Job 2: classify the pulled code from its syntax tree, choose each script's image, plan one run per script."""

import sys

from jobs._entry import entry
from jobs.pipeline import choose_runtime, ensure_runtime_ready, last_pull, step_plan


def body(ctx, args):  # noqa: ANN001, ANN201
    runtime = choose_runtime(ctx)
    runs = step_plan(ctx, last_pull(ctx.settings), runtime.name, new_run=args.new_run)
    ensure_runtime_ready(runtime, runs, ctx.progress)
    for run in runs:
        print(run.id)
    return 0


def extra(parser):  # noqa: ANN001, ANN201
    parser.add_argument("--new-run", action="store_true", help="train again even if this commit was tuned")


def main(argv=None) -> int:  # noqa: ANN001
    return entry(__doc__, body, extra, argv)


if __name__ == "__main__":
    sys.exit(main())
