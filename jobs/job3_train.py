"""Job 3: train and evaluate each planned script as pushed (trial 0), in its container or process."""

import sys

from jobs._entry import entry
from jobs.pipeline import choose_runtime, current_runs, step_train


def body(ctx, args):  # noqa: ANN001, ANN201
    step_train(ctx, current_runs(ctx), choose_runtime(ctx), only_baseline=True)
    return 0


def main(argv=None) -> int:  # noqa: ANN001
    return entry(__doc__, body, None, argv)


if __name__ == "__main__":
    sys.exit(main())
