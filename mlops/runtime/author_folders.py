"""Folders of the author's machine that the script writes to, made to exist in the trial.

Code pushed from a container or a notebook writes where its author's machine had room:
``model.save('/DLCode/model.h5')``, ``np.savetxt('/content/out/acc.txt', ...)``, ``joblib.dump(m,
'/models/m.pkl')``. Python's ``open`` can be caught in the harness (``mlops_harness/guards.py``), but h5py,
TensorFlow's file system and other C code write past it. So a runtime that mounts (the sandbox, Docker)
makes those folders exist instead: each one is a folder of the trial's own (``outside/<path>`` in the trial
folder), mounted read-write at the path the script names. Whatever library writes there, the file lands in
the trial folder, and the harness reads an accuracy written there as it reads its own files.

Which folders, from the syntax tree before the trial (:func:`named_paths` gathers, :func:`plan` decides):
every string literal of the pushed code that is an absolute path names a folder (its parent, for a file
name with a suffix, an ``open``'s first argument or the static part of an f-string; itself, for a path
joined, made or ending with ``/``). The folder is made from its outermost part that does not exist on
this machine down: ``/DLCode`` is mounted, ``/DLCode/models`` made inside it. Never mounted: a path that
exists on this machine (a folder the trial could otherwise reach, and every folder the runtimes mount for
the trial itself has its ancestors here), the system's folders and the trial's own mount points, a path
``data:`` maps, and anything that is not plainly a path.
"""

from __future__ import annotations

import ast
import json
import os
import posixpath
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

from mlops.data_policy import EXACT_TARGETS, SYSTEM_TARGETS
from mlops.notebook import notebook_to_script
from mlops.project import RELATIVE_MOUNTS, DataPath
from mlops.runtime.base import TrialSpec
from mlops.waits import waits_in
from mlops_harness.protocol import ENV_AUTHOR_FOLDERS, OUTSIDE_DIR

# Never mounted at or under: the system, the trial's own mount points in a container (/code, /trial,
# /cache, the imported data sets at /datasets, data: at /mlops-data), its private /tmp.
RESERVED = (*SYSTEM_TARGETS, "/tmp", "/var", "/datasets", RELATIVE_MOUNTS)
NOT_IN_A_PATH = set("\x00\n\r\t\\*?[]<>|\"'`$~")
NAME = re.compile(r"[\w.@+=,-][\w .@+=,-]*")  # a folder's or file's name as people write them (not "/ 2")
MAX_PATH = 1024
MAX_MOUNTS = 16
MAX_FOLDERS = 64
MAX_FILES = 200  # Python files of the checkout read for paths
MAX_FILE_BYTES = 1 << 20
FOLDER_CALLS = frozenset({"join", "makedirs", "mkdir", "chdir"})
# Calls that ask whether a path is there: the script decides on the answer (it waits for another job's
# file, it makes a folder itself), so such a path is never made, only the folder above it.
TEST_CALLS = frozenset({"exists", "isfile", "isdir", "lexists", "listdir", "glob", "iglob"})
TEST_METHODS = frozenset({"exists", "is_file", "is_dir"})  # Path('/x').exists()
SKIP_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__", ".venv", "venv", ".mlops", "node_modules"})


class NamedPath(NamedTuple):
    """An absolute path as the code names it, and what it names: a folder for sure (joined, made, ending
    with a slash, before a placeholder), a file for sure (opened), or either (a bare literal)."""

    text: str
    folder: bool = False
    file: bool = False
    tested: bool = False  # asked whether it is there


# -- gather -----------------------------------------------------------------------------------------------


def _call_name(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _prefix(node: ast.AST) -> tuple[str, bool] | None:
    """The static text a string expression starts with, and whether more follows it (an f-string's
    placeholder, ``'/DLCode/' + name``, ``'/out/{}.h5'.format(i)``); None for anything else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        text = node.value
        return (text[: text.index("{")], True) if "{" in text else (text, False)
    if isinstance(node, ast.JoinedStr) and node.values:
        first = node.values[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            return first.value, len(node.values) > 1
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left = _prefix(node.left)
        return (left[0], True) if left else None
    return None


def named_paths(source: str) -> list[NamedPath]:
    """Every absolute path the code names in a string (docstrings left out), with what it names."""
    tree = ast.parse(source)
    # Not paths of their own: docstrings, and the parts of an f-string or a sum (``base + "/model.h5"`` is
    # inside ``base``; the sum itself is looked at as a whole).
    skipped = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr)}
    context: dict[int, str] = {}  # id of a string node -> the call it is the first argument of
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            context[id(node.args[0])] = _call_name(node)
        if isinstance(node, ast.Call) and _call_name(node) in TEST_METHODS and not node.args:
            owner = node.func.value if isinstance(node.func, ast.Attribute) else None
            if isinstance(owner, ast.Call) and owner.args:
                context[id(owner.args[0])] = "exists"
        elif isinstance(node, ast.JoinedStr):
            skipped.update(id(v) for v in node.values)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            skipped.update((id(node.left), id(node.right)))
    found: list[NamedPath] = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        got = _prefix(node)
        if got is None or not got[0].startswith("/"):
            continue
        text, more = got
        call = context.get(id(node), "")
        if more:  # only the folders before the placeholder are known: /DLCode/run_{i}.h5 -> /DLCode
            found.append(NamedPath(posixpath.dirname(text) if not text.endswith("/") else text, folder=True))
        else:
            tested = call in TEST_CALLS
            folder = (text.endswith("/") or call in FOLDER_CALLS) and not tested
            found.append(NamedPath(text, folder=folder, file=call == "open", tested=tested))
    return found


# -- decide -----------------------------------------------------------------------------------------------


def _plain(text: str) -> str | None:
    """The path in its normal form, or None when it is not plainly a path (a pattern, a shell word, ...)."""
    if len(text) > MAX_PATH or NOT_IN_A_PATH & set(text) or not text.startswith("/"):
        return None
    path = posixpath.normpath(text)
    if path.startswith("//"):
        path = "/" + path.lstrip("/")
    parts = path.split("/")[1:]
    return path if path != "/" and all(NAME.fullmatch(p) and len(p) <= 255 for p in parts) else None


def folder_of(named: NamedPath) -> str | None:
    """The folder a named path says must exist: the path itself for a folder; its parent for a file, or a
    name with a suffix; for a bare name without one, itself at the top level (``/DLCode``), else its parent."""
    path = _plain(named.text)
    if path is None:
        return None
    parent = posixpath.dirname(path)
    if named.tested:
        return parent if parent != "/" else None
    if named.folder:
        return path
    if named.file or "." in posixpath.basename(path).lstrip("."):
        return parent if parent != "/" else None
    return path if parent == "/" else parent


def _reserved(path: str) -> bool:
    return path in EXACT_TARGETS or any(path == r or path.startswith(r.rstrip("/") + "/") for r in RESERVED)


def _ancestors(path: str) -> Iterator[str]:
    """``/a``, ``/a/b``, ``/a/b/c`` for ``/a/b/c``: outermost first."""
    parts = path.strip("/").split("/")
    for i in range(1, len(parts) + 1):
        yield "/" + "/".join(parts[:i])


def plan(folders: Iterable[str], exists: Callable[[str], bool], mapped: Iterable[str] = ()) -> list[str]:
    """The folders to make for the trial, sorted (a mount point before the folders made inside it): for each
    folder, from its outermost part that does not ``exist`` here down to it, when that part is no reserved
    path, and the folder is not (inside) one that ``data:`` maps (``mapped``)."""
    targets = [posixpath.normpath(m) for m in mapped]
    made: set[str] = set()
    mounts: set[str] = set()
    for folder in sorted(set(folders)):
        if any(folder == t or folder.startswith(t.rstrip("/") + "/") for t in targets):
            continue
        chain = list(_ancestors(folder))
        mount = next((a for a in chain if not exists(a)), None)
        if mount is None or _reserved(mount):
            continue
        if mount not in mounts and not any(mount.startswith(m + "/") for m in mounts):
            if len(mounts) >= MAX_MOUNTS:
                continue
            mounts.add(mount)
        made.update(chain[chain.index(mount) :])
    return sorted(made)[:MAX_FOLDERS]


def mount_points(folders: Iterable[str]) -> list[str]:
    """The folders of a plan that are mounted: those not inside another one."""
    listed = sorted(set(folders))
    return [f for f in listed if not any(f.startswith(o + "/") for o in listed if o != f)]


# -- the trial's side -----------------------------------------------------------------------------------


def _sources(spec: TrialSpec) -> Iterator[str]:
    """The code the trial runs: the checkout's Python files and notebooks (links not followed, bounded),
    and the trial's source when it is written (a trial started ahead has none yet: the checkout says the
    same, as tweaks never add paths)."""
    seen = 0
    for root, dirs, files in os.walk(spec.code_dir):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for name in sorted(files):
            if not name.endswith((".py", ".ipynb")) or seen >= MAX_FILES:
                continue
            seen += 1
            text = _read_plain(Path(root) / name)
            if text is not None:
                yield notebook_to_script(text) if name.endswith(".ipynb") else text
    text = _read_plain(spec.source_file) if spec.source_file.exists() else None
    if text is not None:
        yield text


def _read_plain(path: Path) -> str | None:
    try:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_FILE_BYTES:
            return None
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def folders_for(spec: TrialSpec) -> list[str]:
    """The author's folders the trial's code names that this machine lacks (see :func:`plan`)."""
    named: list[str] = []
    waited: list[str] = []
    for text in _sources(spec):
        try:
            paths = named_paths(text)
            waited += [posixpath.normpath(w.path) for w in waits_in(text) if w.path.startswith("/")]
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue  # the trial fails on it, said by the harness
        named += [f for p in paths if (f := folder_of(p)) is not None]
    # A path a loop waits for comes from another job: making it (or a folder in it) would end the wait.
    named = [f for f in named if not any(f == w or f.startswith(w + "/") for w in waited)]
    absolute = [d.target for d in spec.data if not d.relative]
    return plan(named, os.path.lexists, absolute)


def _make_inside(top: Path, relative: str) -> Path | None:
    """``top/relative``, made folder by folder, or None when some part of it is not a plain folder (the
    trial folder is written by the trial's code: a link it left there is never followed)."""
    here = top
    for part in [""] + relative.strip("/").split("/"):
        here = here / part if part else here
        try:
            os.mkdir(here, 0o755)
        except FileExistsError:
            pass
        except OSError:
            return None
        if not stat.S_ISDIR(os.lstat(here).st_mode):
            return None
    return here


def with_author_folders(spec: TrialSpec) -> TrialSpec:
    """The spec to launch in a runtime that mounts: each author's folder a writable ``data:`` entry at its
    path, from ``outside/`` in the trial folder (made here), and the folders named to the harness
    (``MLOPS_AUTHOR_FOLDERS``, always set: the pushed ``env:`` cannot name folders of its own)."""
    if spec.check_model:
        return spec
    top = spec.trial_dir.resolve() / OUTSIDE_DIR
    made = []
    for folder in folders_for(spec):
        if _make_inside(top, folder) is not None:
            made.append(folder)
    entries = tuple(
        DataPath(target=at, source=str(top / at.lstrip("/")), writable=True) for at in mount_points(made)
    )
    env = {**spec.env, ENV_AUTHOR_FOLDERS: json.dumps(made)}
    return replace(spec, data=(*spec.data, *entries), env=env)
