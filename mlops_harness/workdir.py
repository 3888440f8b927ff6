"""The script's surroundings: its work folder (a copy of the code), an IPython stand-in, where it failed."""

from __future__ import annotations

import os
import shutil
import traceback
from pathlib import Path

from mlops_harness.protocol import WORK_DIR
from mlops_harness.recorder import say

COPY_LIMIT_BYTES = 8 * 1024 * 1024  # bigger files (datasets) are linked into work/, not copied
SKIP_DIRS = {".git", ".hg", ".svn", "__pycache__", ".venv", "venv", ".mlops", "node_modules"}


def prepare_work(code: Path, script: str, source: Path, out: Path) -> Path:
    """Copy the code into out/work (large files linked) and put the variant in the script's place."""
    work = out / WORK_DIR
    if not work.exists():
        staging = out / ".work.tmp"
        shutil.rmtree(staging, ignore_errors=True)

        def copy(src: str, dst: str) -> None:
            if os.path.getsize(src) > COPY_LIMIT_BYTES:
                os.symlink(os.path.abspath(src), dst)
            else:
                shutil.copy2(src, dst)

        shutil.copytree(
            code,
            staging,
            symlinks=True,
            ignore=shutil.ignore_patterns(*SKIP_DIRS),
            copy_function=copy,
        )
        os.replace(staging, work)
    target = work / script
    target.parent.mkdir(parents=True, exist_ok=True)
    text = source.read_text(encoding="utf-8", errors="surrogateescape")
    if target.is_symlink():
        target.unlink()
    target.write_text(text, encoding="utf-8", errors="surrogateescape")
    return target


class IPythonShim:
    """Jupyter exports call get_ipython() for magics; outside IPython they are no-ops, said aloud."""

    def run_line_magic(self, name: str, line: str = "") -> None:
        say(f"ignored IPython magic %{name} {line}".rstrip())

    def run_cell_magic(self, name: str, line: str = "", cell: str = "") -> None:
        say(f"ignored IPython cell magic %%{name}")

    def system(self, command: str) -> None:
        say(f"ignored shell command !{command}")

    def magic(self, line: str) -> None:
        say(f"ignored IPython magic %{line}")


def error_location(exc: BaseException, script: Path) -> tuple[str | None, int | None]:
    """The deepest frame of the user's code in a traceback (or a SyntaxError's own position)."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return exc.filename, exc.lineno
    best: tuple[str | None, int | None] = (None, None)
    root = os.path.realpath(script.parent)
    for frame in traceback.extract_tb(exc.__traceback__):
        if os.path.realpath(frame.filename).startswith(root):
            best = (frame.filename, frame.lineno)
    return best


def relative_to(path: str | None, root: Path) -> str | None:
    if not path:
        return None
    try:
        return str(Path(os.path.realpath(path)).relative_to(os.path.realpath(root)))
    except ValueError:
        return path
