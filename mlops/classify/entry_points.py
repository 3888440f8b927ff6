"""A repository's training scripts: those its ``mlops.yaml`` names (:mod:`mlops.project`), else every file
that defines a model and trains it; and the classification of paths given on a command line, where a
directory stands for its entry points."""

from __future__ import annotations

import os
from pathlib import Path

from mlops.classify.files import classify_file, facts_of, failed, follow, source_text
from mlops.classify.fragments import guessed_refs
from mlops.classify.rules import Classification, evidence_of, trains
from mlops.errors import MlopsError, SourceError
from mlops.project import read_project

SKIP_DIRS = frozenset(
    {"tests", "test", "venv", "env", "site-packages", "node_modules", "__pycache__", "build", "dist"}
)
SKIP_FILES = frozenset({"setup.py", "conftest.py", "noxfile.py", "manage.py"})


def candidate_files(root: Path) -> list[Path]:
    """The .py and .ipynb files under ``root`` that may be training scripts, in a stable order: tests,
    virtualenvs, hidden folders and packaging files are left out."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not d.startswith(".") and d not in SKIP_DIRS and not (here / d / "pyvenv.cfg").exists()
        )
        for name in sorted(filenames):
            if not name.endswith((".py", ".ipynb")) or name.startswith("."):
                continue
            if name in SKIP_FILES or name.startswith("test_") or name.endswith("_test.py"):
                continue
            out.append(here / name)
    return out


def find_entry_points(root: Path | str) -> list[Path]:
    """The training scripts of a repository, relative to ``root`` and sorted: those ``mlops.yaml`` names
    under ``entry_points``, else every .py/.ipynb file that defines (or imports from a local module) a
    model and trains it. Raises MlopsError for a bad mlops.yaml."""
    root = Path(root)
    named = read_project(root).entry_points
    if named:
        return sorted(named)
    found = []
    for path in candidate_files(root):
        try:
            text, _ = source_text(path.read_bytes(), str(path))
        except (OSError, SourceError):
            continue
        facts = facts_of(text, str(path))
        if not trains(facts):
            continue
        follow(facts, path, root, seen={path.resolve()}, depth=0)
        if any(evidence_of(r) is not None for r in facts.refs) or guessed_refs(facts)[0]:
            found.append(path.relative_to(root))
    return sorted(found)


def classify_paths(paths: list[str]) -> list[Classification]:
    """Classify files, and the entry points of directories (each relative to its directory); a path that
    cannot be classified, or a directory with no entry point, gives a failed classification."""
    out: list[Classification] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            try:
                entries = find_entry_points(path)
            except MlopsError as e:
                out.append(failed(p, str(e)))
                continue
            if not entries:
                out.append(failed(p, "no training entry point found (add mlops.yaml with entry_points)"))
            out += [classify_file(path / e, root=path) for e in entries]
        elif path.exists():
            out.append(classify_file(path))
        else:
            out.append(failed(p, "no such file or directory"))
    return out
