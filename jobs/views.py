"""What the CLI prints: results shown as a table (rich on a terminal, aligned text otherwise) or JSON lines."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TextIO

from mlops.classify import Classification
from mlops.progress import terminal_safe

COLUMNS = ("PATH", "KIND", "FAMILY", "FRAMEWORK", "API", "IMAGE", "CONF", "WHY")


def print_classifications(results: Sequence[Classification], as_json: bool, out: TextIO = sys.stdout) -> int:
    """``mlops classify``'s output: one JSON object per line, or a table. Returns the exit code: 1 when
    any file failed, else 0."""
    if as_json:
        for c in results:
            out.write(json.dumps(c.to_json()) + "\n")
    elif out.isatty():
        _rich_table(results, out)
    else:
        _plain_table(results, out)
    return 1 if any(c.failed for c in results) else 0


def _row(c: Classification) -> tuple[str, ...]:
    if c.error is not None:
        why = f"error: line {c.error_line}: {c.error}" if c.error_line else f"error: {c.error}"
        if c.error_line and c.error.startswith(f"line {c.error_line}:"):
            why = f"error: {c.error}"
    else:
        first = next((r for r in c.reasons if r.line), c.reasons[0] if c.reasons else None)
        why = f"line {first.line}: {first.text}" if first and first.line else (first.text if first else "")
    cells = (c.path, c.kind, c.family, c.framework, c.api, c.image, f"{c.confidence:.2f}", why)
    return tuple(terminal_safe(cell) for cell in cells)  # a pushed file's name or text, never orders


def _plain_table(results: Sequence[Classification], out: TextIO) -> None:
    rows = [COLUMNS, *(_row(c) for c in results)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS) - 1)]
    for r in rows:
        cells = [r[i].ljust(widths[i]) for i in range(len(widths))]
        out.write("  ".join([*cells, r[-1]]).rstrip() + "\n")


def _rich_table(results: Sequence[Classification], out: TextIO) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table()
    for name in COLUMNS:  # the short columns stay whole; the path and the reason fold on a narrow terminal
        folds = name in ("PATH", "WHY")
        table.add_column(name, no_wrap=not folds, overflow="fold" if folds else "ellipsis")
    for c in results:
        table.add_row(*(Text(cell) for cell in _row(c)), style="red" if c.failed else None)
    Console(file=out).print(table)
