"""The pushed repository's own settings: ``mlops.yaml`` at its root.

Today it names the training scripts (``entry_points``). A new setting is one field of :class:`Project`,
with the default that applies when the file does not set it, and one function that reads and checks its
value, called from :func:`read_project`. Every problem is a :class:`~mlops.errors.SourceError` that names
the file and the setting: it is the pushed code that is wrong, not mlops.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlops.envsafe import check_names
from mlops.errors import SourceError

CONFIG_FILE = "mlops.yaml"


@dataclass(frozen=True)
class Project:
    """What the repository's mlops.yaml says; with no mlops.yaml, every setting has its default."""

    # The training scripts, relative to the root, as the file lists them. Empty: none named, so they are
    # found from the code (an mlops.yaml must name at least one).
    entry_points: tuple[Path, ...] = ()
    # Constants the training's environment gets (``env: {TF_ENABLE_ONEDNN_OPTS: "0"}``). Values only: the
    # pushed code cannot ask for a variable of the environment mlops runs in.
    env: dict[str, str] = field(default_factory=dict)


def read_project(root: Path | str) -> Project:
    """The settings of the repository at ``root``. Raises SourceError for an mlops.yaml that is not valid
    YAML or holds a setting that cannot work."""
    root = Path(root)
    config = root / CONFIG_FILE
    if not config.is_file():
        return Project()
    data = _load(config)
    return Project(entry_points=_entry_points(data.get("entry_points"), root), env=_env(data.get("env", {})))


def _load(config: Path) -> dict[Any, Any]:
    try:
        data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise SourceError(f"{CONFIG_FILE}{line}: not valid YAML") from e
    return data if isinstance(data, dict) else {}


def _entry_points(value: object, root: Path) -> tuple[Path, ...]:
    """A list of paths to existing files (one path alone is a list of one)."""
    entries = [value] if isinstance(value, str) else value
    if not isinstance(entries, list) or not entries or not all(isinstance(e, str) for e in entries):
        raise SourceError(f"{CONFIG_FILE}: 'entry_points' must be a list of file paths")
    for entry in entries:
        if not (root / entry).is_file():
            raise SourceError(f"{CONFIG_FILE}: entry point {entry!r} does not exist")
    return tuple(Path(entry) for entry in entries)


def _env(value: object) -> dict[str, str]:
    """A mapping of variable names to plain values (strings, numbers, booleans)."""
    if not isinstance(value, dict) or not all(
        isinstance(v, str | int | float | bool) and not isinstance(v, dict) for v in value.values()
    ):
        raise SourceError(f"{CONFIG_FILE}: 'env' must map variable names to plain values")
    try:
        names = check_names([str(k) for k in value], f"{CONFIG_FILE}: env")
    except ValueError as e:
        raise SourceError(str(e)) from None
    for name in names:
        if name.upper().startswith("MLOPS_"):
            raise SourceError(f"{CONFIG_FILE}: env: {name} is mlops's own; the repository cannot set it")
    return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}
