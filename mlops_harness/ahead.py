"""A harness started ahead of its trial: its libraries load while the trial before it trains.

Every trial is a process of its own, and a Keras trial spends 3 to 5 s of it importing TensorFlow before its
first epoch. The local runtime starts the next trial's harness while the current trial trains, before the
tuner knows what the next trial will change (``--wait-for GO``): it imports the libraries the script
imports (only those of :data:`PRELOADED`, never a module of the repository), with the harness's hooks
already in place, then waits. When the trial is proposed, its source written and the runtime writes ``GO``,
the harness copies the code and runs the script as a harness started then would, minus the import.
"""

from __future__ import annotations

import ast
import importlib
import os
import sys
import time
from pathlib import Path

from mlops_harness.recorder import say

# Third-party libraries worth loading early. A module of the pushed repository never is: nothing of the
# user's code runs before its trial is given.
PRELOADED = frozenset(
    {
        "numpy",
        "pandas",
        "scipy",
        "sklearn",
        "tensorflow",
        "keras",
        "tf_keras",
        "torch",
        "torchvision",
        "torchmetrics",
        "lightning",
        "pytorch_lightning",
        "matplotlib",
        "seaborn",
    }
)
POLL_S = 0.01


def imported_modules(script: Path) -> list[str]:
    """The modules of :data:`PRELOADED` that ``script`` imports, in the order it does; none when it does not
    parse (the trial will say why)."""
    try:
        tree = ast.parse(script.read_text(encoding="utf-8", errors="replace"))
    except (OSError, SyntaxError, ValueError):
        return []
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found = [node.module]
        else:
            continue
        names += [name for name in found if name.split(".")[0] in PRELOADED and name not in names]
    return names


def preload(script: Path) -> tuple[list[str], str | None]:
    """Import what ``script`` imports of :data:`PRELOADED`; the names loaded, and why one failed (None when
    none did). A module that is not installed is passed over (nothing of it was loaded); any other failure
    stops it: what that import left half made (torch registers its parts once per process) must not be
    what the script imports again."""
    return preload_modules(imported_modules(script))


def preload_modules(names: list[str]) -> tuple[list[str], str | None]:
    """Import ``names`` in order (see :func:`preload`): the names loaded, and why one failed."""
    loaded: list[str] = []
    for name in names:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name is not None and (name == e.name or name.startswith(f"{e.name}.")):
                continue  # not installed (an optional import): nothing of it was loaded
            return loaded, f"{name}: {type(e).__name__}: {e}"
        except Exception as e:  # noqa: BLE001 (any failure: the script will meet it in a fresh process)
            return loaded, f"{name}: {type(e).__name__}: {e}"
        loaded.append(name)
    return loaded, None


def wait_for(go: Path, seconds: float) -> bool:
    """True once ``go`` exists; False when ``seconds`` pass first (the orchestrator went away, or its run
    ended without this trial)."""
    deadline = time.monotonic() + seconds
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_S)
    return True  # GO stays: the keeper looks for it too (see keeper.py)


def started_ahead(script: Path, go: Path, seconds: float) -> bool:
    """Load the script's libraries, then wait for the trial; False when it never came. When a library
    failed to load, the trial, once given, runs in a fresh harness process (:func:`start_afresh`)."""
    began = time.monotonic()
    loaded, failed = preload(script)
    if loaded:
        say(f"started ahead: {', '.join(loaded)} loaded in {time.monotonic() - began:.1f} s")
    given = wait_for(go, seconds)
    if given and failed is not None:
        start_afresh(failed)
    return given


def start_afresh(failed: str) -> None:
    """Run this harness again in place of this process (same sandbox, same arguments but the wait), so
    the script imports its libraries from scratch: a half-made import is not imported again."""
    say(f"started ahead, but {failed[:300]}; the trial starts in a fresh process")
    argv = [a for a in sys.argv if a]
    if "--wait-for" in argv:
        at = argv.index("--wait-for")
        del argv[at : at + 2]
    if "--wait-s" in argv:
        at = argv.index("--wait-s")
        del argv[at : at + 2]
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, *argv])
