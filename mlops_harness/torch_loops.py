"""The epoch loop of a PyTorch script: found in its syntax tree, followed while it runs, resumed after a kill.

A plain PyTorch training is a ``for`` loop over epochs around a loop over a ``DataLoader``. The harness
cannot see the outer loop from the hooks alone (a ``range`` is not an object it can reach), so a PyTorch
script and its local modules are compiled with each loop that may be an epoch loop (``for ... in
range(...)``, ``trange``, a target or iterable named like ``epoch``) iterating through :class:`Loop`: the
same items, one Python call more per item. Nothing else of the code changes (line numbers included).

Which of those loops is the epoch loop is known once the script trains (torch_hooks.py): the innermost one
around the line that iterates the training ``DataLoader``. From then on each new item of that loop ends an
epoch, and the end of the loop ends the last one; a training restarted after a kill skips the finished
epochs' items and gets the state they left (see torch_checkpoints.py). Standard library only.
"""

from __future__ import annotations

import ast
import builtins
import importlib.abc
import importlib.machinery
import importlib.util
import os
import re
import sys
import threading
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOOP_NAME = "__mlops_loop__"  # the builtin the rewritten loops call
COUNTING_CALLS = frozenset({"range", "trange", "tnrange"})
EPOCH_NAME = re.compile(r"(^|_)(epochs?|ep|e|it|iters?|iterations?|rounds?)($|_)", re.IGNORECASE)
TORCH_MODULES = frozenset(
    {"torch", "torchvision", "torchmetrics", "lightning", "pytorch_lightning", "torchaudio", "torchtext"}
)


class TrialEnded(BaseException):  # noqa: N818 (not an error: the trial is over, and it went well)
    """Raised at an epoch's end to end a training that mlops stops early, its metric recorded; the runner
    takes it as the end of a script that succeeded (a BaseException: the script's ``except Exception``
    does not catch it)."""


@dataclass(frozen=True)
class Site:
    """A loop that may be an epoch loop: its file, the line of its ``for`` and the lines of its body."""

    key: str  # "relative/file.py:LINE:COL"
    path: str  # the file's real path
    line: int
    body: tuple[int, int]  # first and last line of its body


class Watcher:
    """What a loop tells about its items (torch_hooks.py implements it once torch is imported)."""

    def next_item(self, loop: Loop) -> None:
        """``loop`` is about to take its next item (``loop.index`` items were taken)."""

    def ended(self, loop: Loop) -> None:
        """``loop`` has no more items."""

    def started(self, loop: Loop) -> None:
        """``loop`` was created (before its first item)."""


@dataclass
class Registry:
    """Every loop site of the rewritten files, and the loops running now."""

    root: str = ""  # the work folder: keys are relative to it
    sites: dict[str, list[Site]] = field(default_factory=dict)  # real path -> its sites
    by_key: dict[str, Site] = field(default_factory=dict)
    latest: dict[str, Loop] = field(default_factory=dict)  # the newest loop of each site
    counts: dict[str, int] = field(default_factory=dict)  # loops made of each site so far
    watcher: Watcher = field(default_factory=Watcher)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, site: Site) -> None:
        self.sites.setdefault(site.path, []).append(site)
        self.by_key[site.key] = site

    def enclosing(self, stack: Sequence[tuple[str, int]]) -> Site | None:
        """The innermost site whose body holds one of ``stack``'s (real path, line) pairs, innermost first."""
        for path, line in stack:
            around = [s for s in self.sites.get(path, ()) if s.body[0] <= line <= s.body[1]]
            if around:
                return max(around, key=lambda s: (s.line, s.body[0]))
        return None


REGISTRY = Registry()


class Loop:
    """The items of a rewritten loop, as they are; the watcher hears of each one."""

    def __init__(self, iterable: Any, key: str) -> None:
        self.key = key
        self.items: Iterator[Any] = iter(iterable)
        self.index = 0  # items taken
        try:
            self.total: int | None = len(iterable)
        except (TypeError, AttributeError):
            self.total = None
        with REGISTRY.lock:
            self.instance = REGISTRY.counts.get(key, 0)
            REGISTRY.counts[key] = self.instance + 1
            REGISTRY.latest[key] = self
        self.done = False
        self.resume_state: dict[str, Any] | None = None  # set by the watcher: the loop a training resumes
        REGISTRY.watcher.started(self)

    def __iter__(self) -> Loop:
        return self

    def __next__(self) -> Any:
        if self.done:
            raise StopIteration
        REGISTRY.watcher.next_item(self)
        try:
            item = next(self.items)
        except StopIteration:
            self.done = True
            REGISTRY.watcher.ended(self)
            raise
        self.index += 1
        return item

    def skip(self, count: int) -> int:
        """Take ``count`` items without running the loop's body for them (a resumed training's finished
        epochs); the number taken (fewer when the loop ends first)."""
        taken = 0
        while taken < count:
            try:
                next(self.items)
            except StopIteration:
                break
            taken += 1
        self.index += taken
        return taken


def loop(iterable: Any, key: str) -> Any:
    """What a rewritten ``for`` iterates (see :class:`Loop`)."""
    return Loop(iterable, key)


# --------------------------------------------------------------------------------------------------
# Finding and rewriting the loops


def _names(node: ast.AST) -> list[str]:
    return [n.id for n in ast.walk(node) if isinstance(n, ast.Name)] + [
        n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)
    ]


def counts_epochs(node: ast.For) -> bool:
    """True for a ``for`` that may be an epoch loop: it iterates a count (``range``, ``trange``, through
    ``tqdm``/``enumerate`` or not), or its target or iterable is named like epochs."""
    for call in (n for n in ast.walk(node.iter) if isinstance(n, ast.Call)):
        func = call.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if name in COUNTING_CALLS:
            return True
    if isinstance(node.iter, ast.Name | ast.Attribute) and any(
        EPOCH_NAME.search(n) for n in _names(node.iter)
    ):
        return True
    return any(EPOCH_NAME.search(n) for n in _names(node.target) if isinstance(n, str))


class _Rewriter(ast.NodeTransformer):
    def __init__(self, rel: str, real: str) -> None:
        self.rel = rel
        self.real = real
        self.sites: list[Site] = []

    def visit_For(self, node: ast.For) -> ast.AST:  # noqa: N802 (ast's visitor naming)
        self.generic_visit(node)
        if not counts_epochs(node) or not node.body:
            return node
        key = f"{self.rel}:{node.lineno}:{node.col_offset}"
        end = max(getattr(node.body[-1], "end_lineno", None) or node.body[-1].lineno, node.body[-1].lineno)
        self.sites.append(Site(key, self.real, node.lineno, (node.body[0].lineno, end)))
        call = ast.Call(
            func=ast.Name(id=LOOP_NAME, ctx=ast.Load()), args=[node.iter, ast.Constant(key)], keywords=[]
        )
        node.iter = ast.copy_location(call, node.iter)
        return node


def rewrite(source: str | bytes, path: str) -> types.CodeType:
    """The code of ``source`` with its possible epoch loops iterating through :func:`loop`; the sites are
    added to the registry. A file that does not parse is compiled as it is (its SyntaxError is its own)."""
    real = os.path.realpath(path)
    try:
        tree = ast.parse(source, filename=path)
    except (SyntaxError, ValueError):
        return compile(source, path, "exec", dont_inherit=True)
    rel = os.path.relpath(real, REGISTRY.root) if REGISTRY.root else os.path.basename(real)
    rewriter = _Rewriter(rel, real)
    tree = ast.fix_missing_locations(rewriter.visit(tree))
    with REGISTRY.lock:
        for site in rewriter.sites:
            REGISTRY.add(site)
    return compile(tree, path, "exec", dont_inherit=True)


def imports_torch(source: str) -> bool:
    """True when the code imports PyTorch or a library built on it (from its syntax tree)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        if any(name.split(".")[0] in TORCH_MODULES for name in names):
            return True
    return False


def is_torch_program(script: Path, limit: int = 100) -> bool:
    """True when the script, or a Python file beside it or below (its local modules), imports PyTorch (at
    most ``limit`` files, in at most ``limit`` folders: a data set's folder of many files is not read)."""
    files = [script]
    for folders, (top, dirs, names) in enumerate(os.walk(script.parent)):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
        files += [Path(top) / n for n in sorted(names) if n.endswith(".py") and Path(top) / n != script]
        if folders >= limit or len(files) >= limit:
            break
    for path in files[:limit]:
        try:
            if path.stat().st_size < 1_000_000 and imports_torch(
                path.read_text(encoding="utf-8", errors="replace")
            ):
                return True
        except OSError:
            continue
    return False


# --------------------------------------------------------------------------------------------------
# Running the script and importing its local modules rewritten


def run_main(script: Path) -> None:
    """Run ``script`` as ``__main__``, rewritten, as ``runpy.run_path`` runs a file (a module of its own in
    ``sys.modules['__main__']`` while it runs, its ``__file__``, no package)."""
    code = rewrite(script.read_bytes(), str(script))
    module = types.ModuleType("__main__")
    module.__dict__.update(
        __file__=str(script), __cached__=None, __loader__=None, __package__="", __spec__=None,
        __builtins__=builtins,
    )  # fmt: skip
    saved = sys.modules.get("__main__")
    sys.modules["__main__"] = module
    try:
        exec(code, module.__dict__)  # noqa: S102 (the user's script: running it is the harness's job)
    finally:
        if saved is not None:
            sys.modules["__main__"] = saved


class _Loader(importlib.machinery.SourceFileLoader):
    """A local module's loader that compiles it rewritten (never from a cached .pyc)."""

    def get_code(self, fullname: str) -> types.CodeType:
        return rewrite(self.get_data(self.path), self.path)


class LocalModules(importlib.abc.MetaPathFinder):
    """Finds the script's own modules (files under the work folder) and loads them rewritten. Put just
    before the path finder, so what comes first (built-in modules) still does."""

    def __init__(self, root: str) -> None:
        self.root = os.path.realpath(root) + os.sep

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        local = [p for p in (sys.path if path is None else path) if _under(p, self.root)]
        if not local:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, local)
        origin = spec.origin if spec is not None else None
        if spec is None or not origin or not origin.endswith(".py"):
            return None
        return importlib.util.spec_from_file_location(
            fullname, origin, loader=_Loader(fullname, origin),
            submodule_search_locations=spec.submodule_search_locations,
        )  # fmt: skip


def _under(entry: str, root: str) -> bool:
    return isinstance(entry, str) and (os.path.realpath(entry or ".") + os.sep).startswith(root)


def install(root: Path) -> None:
    """Rewrite the loops of the script and of its local modules under ``root`` from now on."""
    REGISTRY.root = os.path.realpath(root)
    vars(builtins)[LOOP_NAME] = loop
    path_finder = importlib.machinery.PathFinder
    at = sys.meta_path.index(path_finder) if path_finder in sys.meta_path else len(sys.meta_path)
    sys.meta_path.insert(at, LocalModules(str(root)))
