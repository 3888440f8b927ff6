"""Job 4: below the target, rewrite the model's source and train again, until the target or the budget."""

import sys

from jobs._entry import entry
from jobs.pipeline import choose_runtime, current_runs, step_train


def body(ctx, args):  # noqa: ANN001, ANN201
    step_train(ctx, current_runs(ctx), choose_runtime(ctx), only_baseline=False)
    return 0


def main(argv=None) -> int:  # noqa: ANN001
    return entry(__doc__, body, None, argv)


if __name__ == "__main__":
    sys.exit(main())
