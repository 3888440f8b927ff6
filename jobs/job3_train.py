"""Job 3: train and evaluate each planned script as pushed (trial 0), in its container or process."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from jobs.args import job_main, job_parser
from jobs.pipeline import Context, choose_runtime, current_runs, step_train
from mlops.config import Settings


def body(settings: Settings, args: argparse.Namespace) -> int:
    ctx = Context.open(settings)
    step_train(ctx, current_runs(ctx), choose_runtime(ctx), only_baseline=True)
    return 0


EXAMPLE = "python -m jobs.job3_train --workspace .mlops --runtime docker --target 0.8"


def parser() -> argparse.ArgumentParser:
    return job_parser(__doc__ or "", None, EXAMPLE)


def main(argv: Sequence[str] | None = None) -> int:
    return job_main(parser(), body, argv)


if __name__ == "__main__":
    sys.exit(main())
