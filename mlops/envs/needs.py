"""What the pushed code asks for: its declared requirements, else the modules it imports.

Declared requirements come from the repository's ``requirements*.txt`` (pip's format: ``-r`` followed,
options and hashes dropped), ``pyproject.toml``'s ``[project] dependencies`` and an ``environment.yml``'s
``pip:`` section, read at the repository's root and in the script's folder. Every requirement keeps where it
was written (``requirements.txt:3``), so an error names the line that asked for it. A line that is not a
requirement is a :class:`~mlops.errors.SourceError` naming the file and the line.

With nothing declared, the imports of the script and of the local modules it imports are read from their
syntax trees: an import inside ``try: ... except ImportError`` is optional and skipped, as are relative
imports, the standard library and modules of the repository itself.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from mlops.classify.files import source_text
from mlops.envs.policy import Source, SourcePolicy, refused_option
from mlops.errors import RequirementRefused, SourceError

# requirements-dev.txt and friends hold a developer's tools (pytest, black), not what training needs.
SKIPPED_SUFFIXES = ("dev", "test", "tests", "doc", "docs", "lint", "ci")
MAX_INCLUDE_DEPTH = 5
MAX_FOLLOW = 50  # local modules read for imports


@dataclass(frozen=True)
class Need:
    """One requirement and who asked for it."""

    requirement: str  # PEP 508 text, as written or as mapped from an import
    name: str  # the distribution's canonical name
    origin: str  # "requirements.txt:3", "train.py:5: import cv2"
    imported: str = ""  # the import name, when the need comes from an import
    source: Source | None = None  # a direct reference the machine's owner allowed (allow_sources)

    @property
    def parsed(self) -> Requirement:
        return Requirement(self.requirement)


@dataclass(frozen=True)
class Declared:
    needs: tuple[Need, ...]
    files: tuple[str, ...]  # the files read, relative to the root
    notes: tuple[str, ...] = ()  # what was ignored, in words


def _need(text: str, where: str, at: tuple[Path, Path, int | None], policy: SourcePolicy) -> Need:
    """A requirement line as a :class:`Need`; a location the owner did not allow is a SourceError."""
    root, rel, line = at
    checked = policy.check(text, root, rel, line)
    if isinstance(checked, Source):
        return Need(checked.requirement, checked.name, where, source=checked)
    return Need(str(checked), canonicalize_name(checked.name), where)


def requirement_files(root: Path, script_dir: Path) -> list[Path]:
    """The requirement files of the repository's root and of the script's folder, in a stable order."""
    found: list[Path] = []
    for folder in dict.fromkeys([root, script_dir]):
        for path in sorted(folder.glob("requirements*.txt")):
            suffix = path.stem.removeprefix("requirements").lstrip("-_.").lower()
            if suffix not in SKIPPED_SUFFIXES and path.is_file():
                found.append(path)
        for name in ("pyproject.toml", "environment.yml", "environment.yaml"):
            if (folder / name).is_file():
                found.append(folder / name)
    return found


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """pip's lines: comments dropped, backslash continuations joined; (first line number, text)."""
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].split("\t#", 1)[0]
        if line.lstrip().startswith("#"):
            line = ""
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        if whole:
            yield start, whole


def _include_target(line: str) -> str | None:
    """The file a ``-r`` line includes (``-r f``, ``-rf``, ``--requirement f``, ``--requirement=f``)."""
    for option in ("--requirement=", "--requirement ", "-r"):
        if line.startswith(option):
            return line[len(option) :].strip() or None
    return None


def _option(line: str, path: Path, root: Path, at: tuple[Path, int]) -> str:
    """An option line of a requirement file: refused (SourceError) or ignored (the note to say)."""
    rel, number = at
    refused = refused_option(line)
    if refused is not None:
        raise RequirementRefused(
            f"{line.split()[0]!r} names {refused}: packages come from the machine's index only, and only its "
            "owner may change that (mlops.toml, pip.conf)",
            rel,
            number,
        )
    target = _constraint_target(line)
    if target is not None and not _inside(path.parent / target, root):
        raise RequirementRefused(
            f"constrains with {target!r}, which is not a file of the repository", rel, number
        )
    return f"{rel}:{number}: option {line.split()[0]!r} ignored"


def _constraint_target(line: str) -> str | None:
    for option in ("--constraint=", "--constraint ", "-c"):
        if line.startswith(option):
            return line[len(option) :].strip() or None
    return None


def _inside(path: Path, root: Path) -> bool:
    resolved = path.resolve()
    return resolved.is_relative_to(root.resolve()) and resolved.is_file()


def read_requirements_txt(
    path: Path, root: Path, notes: list[str], policy: SourcePolicy, depth: int = 0
) -> list[Need]:
    rel = _rel(path, root)
    if depth > MAX_INCLUDE_DEPTH:
        raise SourceError(f"requirement files include each other more than {MAX_INCLUDE_DEPTH} deep", rel)
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as e:
        raise SourceError(f"cannot read: {e.strerror or e}", rel) from e
    needs: list[Need] = []
    for number, line in _logical_lines(text):
        target = _include_target(line)
        if target is not None:
            included = path.parent / target
            if not _inside(included, root):
                raise RequirementRefused(
                    f"includes {target!r}, which is not a file of the repository", rel, number
                )
            needs += read_requirements_txt(included.resolve(), root, notes, policy, depth + 1)
        elif line.startswith("-"):
            notes.append(_option(line, path, root, (rel, number)))
        else:
            needs.append(_requirement_line(line, f"{rel}:{number}", (root, rel, number), policy))
    return needs


def _requirement_line(line: str, where: str, at: tuple[Path, Path, int | None], policy: SourcePolicy) -> Need:
    """One requirement line: ``--hash`` dropped; another option on the line is refused as a whole line."""
    words = line.split()
    for word in words[1:]:
        if word.startswith("-") and not word.startswith("--hash") and refused_option(word) is not None:
            raise RequirementRefused(f"{word!r} on a requirement line is not allowed", at[1], at[2])
    text = " ".join(word for word in words if not word.startswith("--hash"))
    return _need(text, where, at, policy)


def _line_of(text: str, needle: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    return None


def read_pyproject(path: Path, root: Path, policy: SourcePolicy) -> list[Need]:
    rel = _rel(path, root)
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SourceError(f"not valid TOML: {e}", rel) from e
    deps = (data.get("project") or {}).get("dependencies") or []
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise SourceError("[project] dependencies must be a list of requirement strings", rel)
    needs = []
    for dep in deps:
        line = _line_of(text, dep)
        needs.append(_need(dep, f"{rel}:{line}" if line else str(rel), (root, rel, line), policy))
    return needs


def read_environment_yml(path: Path, root: Path, notes: list[str], policy: SourcePolicy) -> list[Need]:
    """The ``pip:`` section of a conda environment file; its conda packages are named in a note."""
    rel = _rel(path, root)
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise SourceError("not valid YAML", rel, mark.line + 1 if mark is not None else None) from e
    deps = data.get("dependencies") if isinstance(data, dict) else None
    needs: list[Need] = []
    conda: list[str] = []
    for dep in deps if isinstance(deps, list) else []:
        if isinstance(dep, dict) and isinstance(dep.get("pip"), list):
            for item in dep["pip"]:
                line = _line_of(text, str(item))
                needs += _pip_item(str(item).strip(), path, root, notes, (rel, line), policy)
        elif isinstance(dep, str) and not dep.startswith(("python", "pip")):
            conda.append(dep)
    if conda:
        notes.append(
            f"{rel}: conda packages are not installed ({', '.join(conda[:8])}); list them under pip:"
        )
    return needs


def _pip_item(
    item: str, path: Path, root: Path, notes: list[str], at: tuple[Path, int | None], policy: SourcePolicy
) -> list[Need]:
    """One entry of environment.yml's ``pip:`` list, read as a line of a requirement file."""
    rel, line = at
    where = f"{rel}:{line}" if line else str(rel)
    target = _include_target(item)
    if target is not None:
        if not _inside(path.parent / target, root):
            raise RequirementRefused(f"includes {target!r}, which is not a file of the repository", rel, line)
        return read_requirements_txt((path.parent / target).resolve(), root, notes, policy, 1)
    if item.startswith("-"):
        notes.append(_option(item, path, root, (rel, line or 0)))
        return []
    return [_requirement_line(item, where, (root, rel, line), policy)]


def read_declared(root: Path, script_dir: Path, policy: SourcePolicy | None = None) -> Declared:
    """Every requirement the repository declares, in file order (a name asked twice is kept twice)."""
    policy = policy or SourcePolicy()
    notes: list[str] = []
    needs: list[Need] = []
    files = requirement_files(root, script_dir)
    for path in files:
        if path.name == "pyproject.toml":
            needs += read_pyproject(path, root, policy)
        elif path.suffix in (".yml", ".yaml"):
            needs += read_environment_yml(path, root, notes, policy)
        else:
            needs += read_requirements_txt(path, root, notes, policy)
    return Declared(tuple(needs), tuple(_rel(p, root).as_posix() for p in files), tuple(notes))


def _rel(path: Path, root: Path) -> Path:
    try:
        return path.resolve().relative_to(root.resolve())
    except ValueError:
        return Path(path.name)


# ------------------------------------------------------------------------------------------------ imports


@dataclass(frozen=True)
class Import:
    top: str  # the top-level module name
    origin: str  # "train.py:5: import cv2"


def _optional(handlers: list[ast.ExceptHandler]) -> bool:
    """True when a try statement's handlers catch a failed import."""
    for handler in handlers:
        kind = handler.type
        names = [kind] if not isinstance(kind, ast.Tuple) else list(kind.elts)
        if kind is None or any(
            isinstance(n, ast.Name)
            and n.id in ("ImportError", "ModuleNotFoundError", "Exception", "BaseException")
            for n in names
        ):
            return True
    return False


def imports_of(tree: ast.AST) -> Iterator[tuple[str, int, int, bool]]:
    """(module, level, line, optional) of every import statement, optional when a try guards it."""

    def visit(node: ast.AST, guarded: bool) -> Iterator[tuple[str, int, int, bool]]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, 0, node.lineno, guarded
        elif isinstance(node, ast.ImportFrom):
            yield node.module or "", node.level, node.lineno, guarded
        if isinstance(node, ast.Try):
            inner = guarded or _optional(node.handlers)
            for stmt in node.body:
                yield from visit(stmt, inner)
            others: list[ast.AST] = [*node.handlers, *node.orelse, *node.finalbody]
            for other in others:
                yield from visit(other, guarded)
            return
        for child in ast.iter_child_nodes(node):
            yield from visit(child, guarded)

    yield from visit(tree, False)


def _local(top: str, folders: list[Path]) -> bool:
    return any((f / f"{top}.py").is_file() or (f / top).is_dir() for f in folders)


def read_imports(root: Path, script: Path) -> list[Import]:
    """The third-party modules the script and its local modules import (not optionally), first use first."""
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    folders = list(dict.fromkeys([script.parent, root]))
    found: dict[str, Import] = {}
    queue, seen = [script], {script.resolve()}
    while queue and len(seen) <= MAX_FOLLOW:
        path = queue.pop(0)
        try:
            text, _ = source_text(path.read_bytes(), str(path))
            tree = ast.parse(text)
        except (OSError, SourceError, SyntaxError, ValueError):
            continue  # a file that does not parse fails in its trial, with its own line
        rel = _rel(path, root).as_posix()
        lines = text.splitlines()
        for module, level, line, optional in imports_of(tree):
            top = module.split(".")[0]
            if level or not top or top in stdlib:
                continue
            if _local(top, folders + [path.parent]):
                for candidate in (path.parent / f"{top}.py", root / f"{top}.py", root / top / "__init__.py"):
                    if candidate.is_file() and candidate.resolve() not in seen:
                        seen.add(candidate.resolve())
                        queue.append(candidate)
                continue
            if optional or top in found:
                continue
            statement = lines[line - 1].strip() if 0 < line <= len(lines) else f"import {module}"
            found[top] = Import(top, f"{rel}:{line}: {statement}")
    return list(found.values())
