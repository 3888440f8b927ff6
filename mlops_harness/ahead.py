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


def preload(script: Path) -> list[str]:
    """Import what ``script`` imports of :data:`PRELOADED`; the names loaded. A module that fails to import
    is left for the script to fail on, with its own traceback."""
    loaded = []
    for name in imported_modules(script):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001, S112 (the trial reports it when the script imports it)
            continue
        loaded.append(name)
    return loaded


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
    """Load the script's libraries, then wait for the trial; False when it never came."""
    began = time.monotonic()
    loaded = preload(script)
    if loaded:
        say(f"started ahead: {', '.join(loaded)} loaded in {time.monotonic() - began:.1f} s")
    return wait_for(go, seconds)
