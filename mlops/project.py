"""The pushed repository's own settings: ``mlops.yaml`` at its root.

Today it names the training scripts (``entry_points``). A new setting is one field of :class:`Project`,
with the default that applies when the file does not set it, and one function that reads and checks its
value, called from :func:`read_project`. Every problem is a :class:`~mlops.errors.SourceError` that names
the file and the setting: it is the pushed code that is wrong, not mlops. What ``data:`` may map is
:mod:`mlops.data_policy`'s.
"""

from __future__ import annotations

import enum
import os
import posixpath
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from mlops.data_policy import RELATIVE_MOUNTS, DataPath, check_reach, check_source, read_data
from mlops.envsafe import check_names
from mlops.errors import SourceError
from mlops.hyperparams import Role, role_of

__all__ = ["CONFIG_FILE", "RELATIVE_MOUNTS", "DataPath", "Project", "TunedFile", "mapped_data", "read_data"]
CONFIG_FILE = "mlops.yaml"


@dataclass(frozen=True)
class TunedFile:
    """One ``tune_file:`` entry: a file the script reads its hyperparameters from, one value a line (the
    classic setup's ``input.txt``), with the hyperparameter each line holds."""

    key: str  # as mlops.yaml names it
    source: str  # the file here, as pushed (absolute)
    target: str | None  # the path the script uses, when data: maps it
    in_repo: str | None  # otherwise: the file's path in the repository, which the script reads relatively
    names: tuple[str | None, ...]  # per line, from the first; None: the line is kept as it is
    lines: tuple[str, ...]  # the file's lines as pushed

    def roles(self) -> list[tuple[int, str, Role]]:
        """(line index, name, hyperparameter) of each tuned line."""
        return [
            (i, n, r) for i, n in enumerate(self.names) if n is not None and (r := role_of(n)) is not None
        ]


class EarlyStop(enum.StrEnum):
    """Which trials' Keras fits mlops may stop early (its patience and ``stop_at_target``)."""

    TUNING = "tuning"  # the tuning trials only: trial 0 runs as pushed, every epoch it asks for
    ALL = "all"  # trial 0 too: a baseline that costs less, at the price of running other than as pushed
    NONE = "none"  # no trial: the script's own logic depends on every epoch of its fits

    def applies_to(self, trial: int) -> bool:
        return self is EarlyStop.ALL or (self is EarlyStop.TUNING and trial > 0)


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
    # The paths the scripts use mapped to files or folders here (``data: {/root/train_set: data/train}``).
    data: tuple[DataPath, ...] = ()
    # Files of values the scripts read, one a line, whose lines are tuned (``tune_file: {input.txt:
    # [max_depth, n_estimators]}``): each trial reads its own copy, with its values.
    tune_file: tuple[TunedFile, ...] = ()
    # Which trials' Keras fits mlops may stop early (``early_stop: all`` for trial 0 too, ``none`` for no
    # trial). Trial 0 is the code as pushed, so by default it runs every epoch it asks for.
    early_stop: EarlyStop = EarlyStop.TUNING
    # Start a new commit's search from the last tuned commit's best changes and trials (``warm_start:
    # false``: from scratch). Off here or in the site's settings is off.
    warm_start: bool = True


def read_project(root: Path | str, workspace: Path | None = None) -> Project:
    """The settings of the repository at ``root`` (``workspace``: the mlops workspace, which no ``data:``
    entry may expose). Raises SourceError for an mlops.yaml that is not valid YAML or holds a setting that
    cannot work."""
    root = Path(root)
    config = root / CONFIG_FILE
    if not config.is_file():
        return Project()
    data = _load(config)
    entries = data.get("entry_points")
    mapped = read_data(data.get("data"), CONFIG_FILE, root, workspace)
    return Project(
        entry_points=_entry_points(entries, root) if entries is not None else (),
        inputs=_inputs(data.get("inputs")),
        install=_install(data.get("install", True)),
        env=_env(data.get("env", {})),
        data=mapped,
        tune_file=_tune_files(data.get("tune_file"), root, mapped),
        early_stop=_early_stop(data.get("early_stop", EarlyStop.TUNING.value)),
        warm_start=_flag(data.get("warm_start", True), "warm_start"),
    )


def mapped_data(
    root: Path, site: tuple[DataPath, ...], workspace: Path | None, roots: tuple[str, ...] = ()
) -> tuple[DataPath, ...]:
    """The ``data:`` of the repository at ``root`` over the site's (``mlops.toml``): on the same path, the
    repository's entry wins. What the push maps must be in the repository or under one of ``roots`` (the
    site's ``data_roots``), and never in, or holding, an mlops workspace; the site's own entries are the
    machine owner's, checked only against the system's secrets."""
    own = read_project(root, workspace).data
    for entry in own:
        check_reach(Path(entry.source), f"{CONFIG_FILE}: data: {entry.target}", root, roots)
    for entry in site:
        check_source(Path(entry.source), f"mlops.toml: data: {entry.target}", None, workspace)
    taken = {entry.target for entry in own}
    return (*own, *(entry for entry in site if entry.target not in taken))


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
    return _flag(value, "install")


def _flag(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise SourceError(f"{CONFIG_FILE}: {name!r} must be true or false but got {value!r}")
    return value


def _early_stop(value: object) -> EarlyStop:
    try:
        return EarlyStop(value if isinstance(value, str) else repr(value))
    except ValueError:
        known = ", ".join(e.value for e in EarlyStop)
        raise SourceError(f"{CONFIG_FILE}: 'early_stop' must be one of {known} but got {value!r}") from None


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


def _tune_files(value: object, root: Path, data: tuple[DataPath, ...]) -> tuple[TunedFile, ...]:
    """``tune_file:``: each file (a path of ``data:``, or a file of the repository) -> the names of its
    lines, in order. Every named line must be there, and hold a number."""
    if value is None:
        return ()
    where = f"{CONFIG_FILE}: tune_file"
    if not isinstance(value, dict):
        raise SourceError(f"{where}: must map each file to the names of its lines ({{input.txt: [epochs]}})")
    return tuple(_tuned_file(key, names, root, data, where) for key, names in value.items())


def _tuned_file(key: object, value: object, root: Path, data: tuple[DataPath, ...], where: str) -> TunedFile:
    if not isinstance(key, str) or not key.strip():
        raise SourceError(f"{where}: every key must be a file the script reads, not {key!r}")
    what = f"{where}: {key}"
    given = value if isinstance(value, list) else [value]
    names: list[str | None] = [n for n in given if n is None or isinstance(n, str)]
    if not names or len(names) != len(given):
        raise SourceError(
            f"{what}: give the name of each line, in order ([max_depth, n_estimators]; ~ for a line kept)"
        )
    if all(name is None for name in names):
        raise SourceError(f"{what}: no line is named, so nothing would be tuned ([max_depth, n_estimators])")
    for n, name in enumerate(names, start=1):
        if name is not None and role_of(name) is None:
            known = ", ".join(r.value for r in Role)
            raise SourceError(
                f"{what}: line {n} is named {name!r}, which is no hyperparameter mlops tunes "
                f"(names that say one of: {known}; ~ for a line kept as it is)"
            )
    source, target, in_repo = _find_tuned(key.strip(), root, data, what)
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SourceError(f"{what}: {source} cannot be read as text: {e}") from e
    lines = text.splitlines()
    if len(names) > len(lines):
        raise SourceError(
            f"{what}: {len(names)} names but the file has {len(lines)} line(s) (one value a line, in order)"
        )
    for n, name in enumerate(names):
        if name is None:
            continue
        try:
            float(lines[n].strip())
        except ValueError:
            raise SourceError(
                f"{what}: line {n + 1} ({lines[n]!r}) is not a number, so {name} cannot be tuned "
                "(~ in its place keeps the line as it is)"
            ) from None
    return TunedFile(key.strip(), str(source), target, in_repo, tuple(names), tuple(lines))


def _find_tuned(
    key: str, root: Path, data: tuple[DataPath, ...], what: str
) -> tuple[Path, str | None, str | None]:
    """The file here, the path the script uses (if data: maps it) and its path in the repository (if the
    script reads it relatively, unmapped)."""
    plain = posixpath.normpath(key)
    if ".." in Path(plain).parts:
        raise SourceError(f"{what}: a path with '..' is not taken")
    for entry in sorted(data, key=lambda d: len(d.target), reverse=True):
        if plain == entry.target or plain.startswith(entry.target.rstrip("/") + "/"):
            source = Path(entry.source + plain[len(entry.target) :])
            if not source.is_file():
                raise SourceError(f"{what}: data: maps it to {source}, which is not a file")
            return source, plain, None
    inside = root / plain
    real = Path(os.path.realpath(inside)) if not plain.startswith("/") else None
    if real is None or not real.is_file() or not real.is_relative_to(os.path.realpath(root)):
        raise SourceError(
            f"{what}: no such file: name a file of the repository, or the path the script uses "
            f"and map it with data: in {CONFIG_FILE}"
        )
    for entry in data:  # a file of the repository that data: maps, itself or in its folder
        if real.is_relative_to(entry.source):
            rest = real.relative_to(entry.source).as_posix()
            return real, entry.target if rest == "." else posixpath.join(entry.target, rest), None
    return real, None, plain
