"""The pushed repository's own settings: ``mlops.yaml`` at its root.

Today it names the training scripts (``entry_points``). A new setting is one field of :class:`Project`,
with the default that applies when the file does not set it, and one function that reads and checks its
value, called from :func:`read_project`. Every problem is a :class:`~mlops.errors.SourceError` that names
the file and the setting: it is the pushed code that is wrong, not mlops.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
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
    # found from the code.
    entry_points: tuple[Path, ...] = ()
    # The answers to the scripts' input() prompts, in order (the classic setup's input.txt). A number whose
    # prompt names a hyperparameter (epochs, layers, units, ...) is tuned like any other.
    inputs: tuple[str | int | float, ...] = ()
    # Install what the code asks for (requirement files, imports) before training: ``install: false`` runs
    # it on the training image or the interpreter as they are.
    install: bool = True
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
    entries = data.get("entry_points")
    return Project(
        entry_points=_entry_points(entries, root) if entries is not None else (),
        inputs=_inputs(data.get("inputs")),
        install=_install(data.get("install", True)),
        env=_env(data.get("env", {})),
    )


def _load(config: Path) -> dict[Any, Any]:
    try:
        data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise SourceError(f"{CONFIG_FILE}{line}: not valid YAML") from e
    if not isinstance(data, dict):
        raise SourceError(f"{CONFIG_FILE}: must be a mapping of settings (entry_points:, inputs:, ...)")
    known = {f.name for f in fields(Project)}
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise SourceError(
            f"{CONFIG_FILE}: unknown setting {unknown[0]!r} (known: {', '.join(sorted(known))})"
        )
    return data


def _entry_points(value: object, root: Path) -> tuple[Path, ...]:
    """A list of paths to existing files (one path alone is a list of one)."""
    entries = [value] if isinstance(value, str) else value
    if not isinstance(entries, list) or not entries or not all(isinstance(e, str) for e in entries):
        raise SourceError(f"{CONFIG_FILE}: 'entry_points' must be a list of file paths")
    for entry in entries:
        if not (root / entry).is_file():
            raise SourceError(f"{CONFIG_FILE}: entry point {entry!r} does not exist")
    return tuple(Path(entry) for entry in entries)


def _inputs(value: object) -> tuple[str | int | float, ...]:
    """A list of answers, each a number or a line of text (one answer alone is a list of one)."""
    if value is None:
        return ()
    answers = value if isinstance(value, list) else [value]
    for n, answer in enumerate(answers, start=1):
        if isinstance(answer, bool) or not isinstance(answer, str | int | float):
            raise SourceError(
                f"{CONFIG_FILE}: 'inputs' item {n} must be a number or a line of text, not {answer!r}"
            )
        if isinstance(answer, str) and "\n" in answer:
            raise SourceError(f"{CONFIG_FILE}: 'inputs' item {n} must be one line (one answer per prompt)")
    return tuple(answers)


def _install(value: object) -> bool:
    if not isinstance(value, bool):
        raise SourceError(f"{CONFIG_FILE}: 'install' must be true or false but got {value!r}")
    return value


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
