"""The shape of the code, checked from its source: the layers of docs/architecture.md, no import cycle,
one module that talks to Docker, the run folder's names spelled in one place, runtimes asked their
capabilities (the sizes of modules and functions: test_code_size.py)."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

from tests.support import source_tree
from tests.support.source_tree import PACKAGES, ROOT, modules


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported(path: Path, name: str, known: set[str]) -> set[str]:
    """The project modules ``path`` imports, anywhere in it (functions included; TYPE_CHECKING blocks not)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and _type_checking_only(node)
            for child in node.body for n in ast.walk(child)}  # fmt: skip
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imported(path, name, known) for name, path in found.items()}


def allowed_imports() -> dict[str, list[str]]:
    """The layer table of docs/architecture.md: ``| `package` | `may`, `import` |`` rows."""
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    rules = {}
    for line in doc.splitlines():
        match = re.match(r"^\|\s*`(\w+)`\s*\|([^|]*)\|", line)
        if match and match.group(1) in PACKAGES:
            rules[match.group(1)] = re.findall(r"`([\w.*]+)`", match.group(2))
    return rules


def test_the_doc_draws_every_package():
    assert set(allowed_imports()) == set(PACKAGES)


def upward(edges: dict[str, set[str]], rules: dict[str, list[str]]) -> list[str]:
    """Imports that the layer table does not allow."""
    wrong = []
    for name, targets in sorted(edges.items()):
        allowed = rules[name.split(".")[0]]
        for target in sorted(targets):
            if allowed != ["*"] and not any(target == a or target.startswith(a + ".") for a in allowed):
                wrong.append(f"{name} imports {target}")
    return wrong


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles (strongly connected components of more than one module, Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return cycles


def test_no_import_goes_up_a_layer():
    assert upward(graph(), allowed_imports()) == []


def test_there_is_no_import_cycle():
    assert find_cycles(graph()) == []


def test_the_checker_finds_a_cycle_and_an_upward_import(tmp_path, monkeypatch):
    """The two tests above can fail: a planted cycle and a planted upward import are both found."""
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "mlops" / "a.py").write_text("from mlops import b\n")
    (tmp_path / "mlops" / "b.py").write_text("def f():\n    from mlops.a import x\n")
    (tmp_path / "mlops" / "c.py").write_text("import jobs.cli\n")
    (tmp_path / "jobs" / "cli.py").write_text("")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(source_tree, "ROOT", tmp_path)
    edges = graph()
    assert find_cycles(edges) == [["mlops.a", "mlops.b"]]
    assert "mlops.c imports jobs.cli" in upward(edges, {p: [p] for p in PACKAGES})


def test_only_the_docker_runtime_package_imports_docker():
    importers = []
    for name, path in modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            if any(n == "docker" or n.startswith("docker.") for n in names):
                importers.append(name)
    assert {name.rpartition(".")[0] if name.count(".") > 2 else name for name in importers} == {
        "mlops.runtime.docker"
    }  # the Docker runtime's package, and nothing else


def test_test_modules_share_code_through_tests_support_only():
    """A test module imports nothing from another test module or from conftest (fixtures are injected)."""
    wrong = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        if "fixtures" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.startswith("tests.") and not name.startswith("tests.support"):
                    wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert wrong == []


# The modules that may spell the names of a workspace, a run and a trial: the layout, the protocol the harness
# shares with the orchestrator (the harness never imports mlops, so it reads the names there), and one
# exception, justified: diskquota.py is also run on its own as a script of the standard library alone (the
# keeper's ``release`` of a trial folder), so it cannot import the layout.
SPELLERS = ("mlops.layout", "mlops_harness", "mlops.runtime.diskquota")


def layout_names() -> set[str]:
    """Every name mlops/layout.py gives (its own and those it takes from the protocol)."""
    import mlops.layout

    names = {v for k, v in vars(mlops.layout).items() if k.isupper() and isinstance(v, str)}
    return names - {mlops.layout.MIRROR_SUFFIX}  # ".git" is git's, said in many places


def docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def spelled_names(source: str, names: set[str]) -> list[tuple[int, str]]:
    """Where ``source`` spells one of ``names`` as a string literal: a file name (it has a dot) anywhere, a
    folder name given to a module's constant, joined with ``/``, or as a part of a relative path
    (``runs/*/trials``)."""
    tree = ast.parse(source)
    skip = docstrings(tree)
    joined = {id(side) for node in ast.walk(tree) if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div)
              for side in (node.left, node.right)}  # fmt: skip
    named = {id(node.value) for node in tree.body if isinstance(node, ast.Assign | ast.AnnAssign)}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or not isinstance(node.value, str) or id(node) in skip:
            continue
        text = node.value
        # a relative path in code (an absolute one is inside a sandbox or a container; prose has spaces)
        parts = (
            set(text.split("/")) if "/" in text and not text.startswith("/") and " " not in text else set()
        )
        dotted = {n for n in names if "." in n}
        if (
            text in dotted
            or ((id(node) in joined or id(node) in named) and text in names)
            or parts & names
            or any(text.startswith(n) for n in dotted if n.endswith("."))  # f"best.{name}"
        ):
            found.append((node.lineno, text))
    return sorted(found)


def test_the_names_of_a_run_folder_are_spelled_only_in_the_layout():
    names = layout_names()
    wrong = [
        f"{path.relative_to(ROOT)}:{line}: {text!r}"
        for name, path in modules().items()
        if not any(name == s or name.startswith(s + ".") for s in SPELLERS)
        for line, text in spelled_names(path.read_text(encoding="utf-8"), names)
    ]
    assert wrong == []


def test_the_spelling_check_finds_each_form():
    names = {"trials", "best.", "best.py", "runs", "model"}
    source = '''"""best.py: a docstring says what it likes."""
a = run / "trials" / str(n)
b = "best.py"
c = f"best.{name}"
d = workspace.glob("runs/*/trials/x")
e = {"model": 1}
f = "the model"
RUNS = "runs"
g = Path("/runs")
'''
    assert [line for line, _ in spelled_names(source, names)] == [2, 3, 4, 5, 8]


def runtime_probes(source: str) -> list[int]:
    """Where ``source`` finds out what a runtime can do from its class or its name rather than asking its
    ``capabilities``: ``isinstance(runtime, ...)``, ``getattr(runtime, ...)``, ``hasattr(runtime, ...)``,
    ``runtime.name == ...``."""

    def is_runtime(node: ast.expr) -> bool:
        name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
        return "runtime" in name.lower()

    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args:
            if node.func.id in ("isinstance", "getattr", "hasattr") and is_runtime(node.args[0]):
                found.append(node.lineno)
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(isinstance(s, ast.Attribute) and s.attr == "name" and is_runtime(s.value) for s in sides):
                found.append(node.lineno)
    return sorted(found)


def test_a_runtime_is_asked_its_capabilities_not_its_class_or_name():
    wrong = [
        f"{path.relative_to(ROOT)}:{line}"
        for name, path in modules().items()
        if not name.startswith("mlops_harness")
        for line in runtime_probes(path.read_text(encoding="utf-8"))
    ]
    assert wrong == []


def test_the_runtime_probe_check_finds_each_form():
    source = """if runtime.name == "docker":
    x = getattr(self.runtime, "python")
y = isinstance(runtime, LocalRuntime)
z = runtime.capabilities.images and hasattr(rt, "prepare")
"""
    assert runtime_probes(source) == [1, 2, 3]


# -- the environment is read once, in mlops/config.py ----------------------------------------------------

ENV_READERS = ("mlops.config", "mlops_harness")  # the harness runs inside the trial, without mlops
ENV_NAMES = frozenset({"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"})
ENV_ALLOWED = {  # (module, text of the line): why it may touch the environment
    ("mlops.envs.forwarder", "env = dict(os.environ, HTTPS_PROXY=proxy"): "runs in the build box as a "
    "program of its own (python -I -S, no mlops) and hands the box's environment to uv with the proxy set",
    ("mlops.runtime.ray_runtime", 'os.environ.setdefault("RAY_USAGE_STATS_ENABLED"'): "a write, not a "
    "read: Ray's opt-out set in this process for ray.init, which reads it there",
}


def environment_reads(source: str) -> list[int]:
    """Where ``source`` touches the environment: ``os.environ``, ``os.getenv``, names imported from os."""
    tree = ast.parse(source)
    names = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
             and node.module == "os" for alias in node.names if alias.name in ENV_NAMES}  # fmt: skip

    def touches(node: ast.AST) -> bool:
        if isinstance(node, ast.ImportFrom):
            return node.module == "os" and any(alias.name in ENV_NAMES for alias in node.names)
        if isinstance(node, ast.Attribute):
            return node.attr in ENV_NAMES and isinstance(node.value, ast.Name) and node.value.id == "os"
        return isinstance(node, ast.Name) and node.id in names

    found = {node.lineno for node in ast.walk(tree) if touches(node)}
    return sorted(found)


def test_the_environment_is_read_only_in_config_and_the_harness():
    found: dict[tuple[str, int], str] = {}
    for name, path in modules().items():
        lines = path.read_text(encoding="utf-8").splitlines()
        for line in [] if name.startswith(ENV_READERS) else environment_reads("\n".join(lines)):
            found[(name, line)] = lines[line - 1].strip()
    allowed = {key: {where for where, text in found.items() if where[0] == key[0] and key[1] in text}
               for key in ENV_ALLOWED}  # fmt: skip
    covered = set().union(*allowed.values())
    wrong = [f"{n}:{line}: {text}" for (n, line), text in found.items() if (n, line) not in covered]
    assert wrong == [], "read the environment in mlops/config.py (Settings.environment) and pass it down"
    assert [key for key, places in allowed.items() if not places] == [], "stale ENV_ALLOWED entries"


def test_the_environment_check_finds_each_form():
    source = """import os
from os import environ, getenv as ge
a = os.environ.get("A")
b = os.environ["B"]
c = os.getenv("C")
d = environ.get("D")
e = ge("E")
f = dict(os.environ, X="1")
g = settings.environment.variables.get("G")
os.environ.setdefault("H", "1")
"""
    assert environment_reads(source) == [2, 3, 4, 5, 6, 7, 8, 10]
