"""The ``while`` loop of the user's code that a call runs inside, from the syntax trees of the files on the stack.

A script that trains until it is good enough (``while accuracy < .90:`` adding layers and calling ``fit``
each round) decides by what each fit gives: a fit that mlops stops early gives less, and the loop runs
rounds it would not have run, or never ends. The harness leaves such fits alone; this finds them. The call
may be in a function the loop calls, in the script or a module of the repository: every frame of the
user's code on the stack is looked at, each file parsed once.
"""

from __future__ import annotations

import ast
import functools
import os
import sys
from dataclasses import dataclass
from types import FrameType


@dataclass(frozen=True)
class Loop:
    """A ``while`` loop of the user's code (``file`` relative to the work folder), and the call's line in it."""

    file: str
    line: int  # of the ``while``
    call_line: int  # of the frame inside it


@functools.lru_cache(maxsize=64)
def while_spans(path: str) -> tuple[tuple[int, int], ...]:
    """The first and last line of every ``while`` statement of a Python file (none if it does not parse)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            tree = ast.parse(fh.read())
    except (OSError, SyntaxError, ValueError, RecursionError):
        return ()
    return tuple(
        (node.lineno, node.end_lineno or node.lineno)
        for node in ast.walk(tree)
        if isinstance(node, ast.While)
    )


def enclosing_while(work_root: str, depth: int = 2) -> Loop | None:
    """The innermost ``while`` loop of the user's code (files under ``work_root``) that the caller of the
    caller (``depth`` frames up) runs inside, directly or through the functions it calls; None if none."""
    root = os.path.realpath(work_root) + os.sep
    frame: FrameType | None = sys._getframe(depth)
    while frame is not None:
        path = os.path.realpath(frame.f_code.co_filename)
        if path.startswith(root):
            line = frame.f_lineno
            inside = [(start, end) for start, end in while_spans(path) if start <= line <= end]
            if inside:
                start, _ = max(inside)  # the innermost: the one that starts last
                return Loop(os.path.relpath(path, root), start, line)
        frame = frame.f_back
    return None
