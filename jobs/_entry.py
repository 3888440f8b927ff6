"""What the six Jenkins entry points share: argument parsing and the error boundary of the CLI."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from jobs.cli import _common, _run_flags, settings_from
from jobs.pipeline import Context
from mlops.errors import MlopsError


def entry(
    description: str,
    body: Callable[[Context, argparse.Namespace], int],
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
    argv: Sequence[str] | None = None,
) -> int:
    parser = argparse.ArgumentParser(description=description)
    if extra:
        extra(parser)
    _common(parser)
    _run_flags(parser)
    args = parser.parse_args(argv)
    try:
        return body(Context.open(settings_from(args)), args)
    except MlopsError as e:
        print(f"mlops: error: {e}", file=sys.stderr)
        return e.exit_code
