"""Job 4: below the target, rewrite the model's source and train again, until the target or the budget."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from jobs.args import job_main, job_parser
from jobs.pipeline import Context, choose_runtime, current_runs, step_train
from mlops.config import Settings


def body(settings: Settings, args: argparse.Namespace) -> int:
    ctx = Context.open(settings)
    step_train(ctx, current_runs(ctx), choose_runtime(ctx), only_baseline=False)
    return 0


EXAMPLE = "python -m jobs.job4_tweak --workspace .mlops --runtime docker --target 0.8 --max-trials 5"


def parser() -> argparse.ArgumentParser:
    return job_parser(__doc__ or "", None, EXAMPLE)


def main(argv: Sequence[str] | None = None) -> int:
    return job_main(parser(), body, argv)


if __name__ == "__main__":
    sys.exit(main())
