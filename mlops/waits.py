"""Why a trial that ran past its time limit never ended: it waited for a file that never came.

The classic setup's job chain had one job drop a file (``dataset_ready.flag``) into a shared folder, and the
training busy-waited for it (``while not os.path.exists('/root/shared/dataset_ready.flag'): time.sleep(1)``).
Here nothing drops it, so the trial only ends at its time limit. When it does, :func:`explain_timeout` reads
the trial's source for a loop that waits on a literal path the trial cannot see, and says which path, on
which line, and the ``data:`` entry that would map it, in class ``data`` (a trial 0 so ends the run: no tweak
brings the file); otherwise the generic reason stays, in class ``timeout``.

The facts (:func:`waits_in`) are gathered from the syntax tree; the decision (:func:`waited_for`) is a pure
function of them and of the trial's ``data:``.
"""

from __future__ import annotations

import ast
import glob
import os
import posixpath
from dataclasses import dataclass, replace
from pathlib import Path

from mlops import trial_files
from mlops.project import CONFIG_FILE, DataPath
from mlops.runtime.base import TrialSpec
from mlops.trial import LaunchResult
from mlops.trial_files import BadTrialFile
from mlops_harness.protocol import FailureClass

# Calls whose truth says a path is there: os.path.exists(p), Path(p).exists(), glob.glob(p), ...
PATH_FUNCTIONS = frozenset({"exists", "isfile", "isdir", "lexists", "glob", "iglob", "listdir"})
PATH_METHODS = frozenset({"exists", "is_file", "is_dir"})


@dataclass(frozen=True)
class Wait:
    """A loop that goes on until ``path`` is there (a literal of the source), at ``line``."""

    path: str
    line: int
    pattern: bool = False  # a glob pattern, not one path


def _literal(node: ast.expr | None, names: dict[str, str]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return names.get(node.id)
    return None


def _paths_tested(test: ast.expr, names: dict[str, str]) -> list[tuple[str, bool]]:
    """The literal paths whose existence ``test`` asks about, each with whether it is a glob pattern."""
    found = []
    for node in ast.walk(test):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute | ast.Name):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
        owner = node.func.value if isinstance(node.func, ast.Attribute) else None
        if name in PATH_METHODS and isinstance(owner, ast.Call) and not node.args:
            path = _literal(owner.args[0] if owner.args else None, names)  # Path('...').exists()
        elif name in PATH_FUNCTIONS and node.args:
            path = _literal(node.args[0], names)  # os.path.exists('...'), glob.glob('...')
        else:
            continue
        if path:
            found.append((path, name in ("glob", "iglob")))
    return found


def _breaks_when(body: list[ast.stmt]) -> list[ast.expr]:
    """The conditions of ``if ...: break`` directly in a loop's body (``while True`` loops)."""
    return [s.test for s in body if isinstance(s, ast.If) and any(isinstance(b, ast.Break) for b in s.body)]


def waits_in(source: str) -> list[Wait]:
    """Every loop of ``source`` that goes on until a literal path exists (``while not exists(p)``, or
    ``while True`` with ``if exists(p): break``), in the order of the source. A path may be a module-level
    name bound once to a string (``FLAG = '/root/shared/ready.flag'``)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    names: dict[str, str] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            value = _literal(stmt.value, {})
            if value is not None:
                names[stmt.targets[0].id] = value
    waits = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.While):
            continue
        tests = [node.test, *_breaks_when(node.body)]
        for test in tests:
            for path, pattern in _paths_tested(test, names):
                waits.append(Wait(path, node.lineno, pattern))
    return sorted(waits, key=lambda w: w.line)


def _here(path: str, data: tuple[DataPath, ...]) -> str | None:
    """Where ``path`` (as the script names it) is on this machine through ``data:``, or None: not mapped."""
    plain = posixpath.normpath(path)
    for entry in sorted(data, key=lambda d: len(d.target), reverse=True):
        if plain == entry.target or plain.startswith(entry.target.rstrip("/") + "/"):
            return entry.source + plain[len(entry.target) :]
    return None


def _there(path: str, pattern: bool, data: tuple[DataPath, ...], folder: Path) -> bool:
    """Whether the trial could see ``path``: through its mapping, or (unmapped) on this machine itself
    (a relative path: in the script's ``folder`` of the checkout)."""
    here = _here(path, data) or str(folder / path)  # an absolute path stays as it is
    return bool(glob.glob(here)) if pattern else os.path.exists(here)


def waited_for(source: str, data: tuple[DataPath, ...], folder: Path) -> Wait | None:
    """The first loop of ``source`` that waits for a path the trial does not have, or None (``folder``:
    the script's folder, for relative paths)."""
    return next((w for w in waits_in(source) if not _there(w.path, w.pattern, data, folder)), None)


def hint(wait: Wait, script: str) -> str:
    what = "a file matching " if wait.pattern else ""
    folder = posixpath.dirname(posixpath.normpath(wait.path))
    name = posixpath.basename(wait.path)
    if folder and folder != "/":
        entry = f"{folder}: <the folder here that holds {name}>"
    else:  # beside the script, or at the root: the file itself (data: cannot replace those folders)
        entry = f"{posixpath.normpath(wait.path)}: <the file here>"
    return (
        f"the script waited for {what}{wait.path} ({script}:{wait.line}), which never came: map it with "
        f"data: in {CONFIG_FILE} (data: {{{entry}}}), or take the wait out of the script"
    )


def explain_timeout(spec: TrialSpec, result: LaunchResult) -> LaunchResult:
    """``result`` of a trial stopped at its time limit, with the path it waited for when that is why."""
    if result.failure is not FailureClass.TIMEOUT:
        return result
    try:
        source = trial_files.read_text(spec.source_file.parent, spec.source_file.name)
    except BadTrialFile:
        return result
    if source is None:
        return result
    wait = waited_for(source, spec.data, (spec.code_dir / spec.script).parent)
    if wait is None:
        return result
    return replace(
        result,
        failure=FailureClass.DATA,  # a path nobody mapped, as a read of it would be: no tweak brings it
        error=f"{result.error}: it waited for {wait.path}, which never came",
        error_file=spec.script,
        error_line=wait.line,
        hint=hint(wait, spec.script),
    )
