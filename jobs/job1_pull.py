"""Job 1: check out the pushed code at its commit (Jenkins runs it on a push)."""

import sys

from jobs._entry import entry
from jobs.pipeline import step_pull


def extra(parser):  # noqa: ANN001, ANN201
    parser.add_argument("source", help="a git URL or a local path")
    parser.add_argument("--ref", help="branch, tag or commit (Jenkins passes $GIT_COMMIT)")


def body(ctx, args):  # noqa: ANN001, ANN201
    checkout = step_pull(ctx, args.source, args.ref)
    print(checkout.commit)
    return 0


def main(argv=None) -> int:  # noqa: ANN001
    return entry(__doc__, body, extra, argv)


if __name__ == "__main__":
    sys.exit(main())
