"""Job 1: check out the pushed code at its commit (Jenkins runs it on a push)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from jobs.args import job_main
from jobs.pipeline import Context, step_pull
from mlops.config import Settings


def extra(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="a git URL or a local path")
    parser.add_argument("--ref", help="branch, tag or commit (Jenkins passes $GIT_COMMIT)")


def body(settings: Settings, args: argparse.Namespace) -> int:
    checkout = step_pull(Context.open(settings), args.source, args.ref)
    print(checkout.commit)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return job_main(__doc__ or "", body, extra, argv)


if __name__ == "__main__":
    sys.exit(main())
