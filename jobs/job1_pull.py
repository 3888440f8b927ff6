"""Job 1: check out the pushed code at its commit (Jenkins runs it on a push)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from jobs.args import job_main, job_parser
from jobs.pipeline import Context, step_pull
from mlops.config import Settings


def extra(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="a git URL, or a local repository, folder or file inside one")
    parser.add_argument(
        "--ref",
        help="branch, tag or commit; Jenkins passes $GIT_COMMIT (default: what is checked out, or HEAD)",
    )


def body(settings: Settings, args: argparse.Namespace) -> int:
    checkout = step_pull(Context.open(settings), args.source, args.ref)
    print(checkout.commit)
    return 0


EXAMPLE = "python -m jobs.job1_pull https://github.com/you/models.git --ref main --workspace .mlops"


def parser() -> argparse.ArgumentParser:
    return job_parser(__doc__ or "", extra, EXAMPLE)


def main(argv: Sequence[str] | None = None) -> int:
    return job_main(parser(), body, argv)


if __name__ == "__main__":
    sys.exit(main())
