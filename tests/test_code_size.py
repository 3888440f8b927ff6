"""Modules and functions small enough to read: no module over 400 lines, no function over 60 lines, except
a function that only declares a command line (an argparse table, read as one)."""

from __future__ import annotations

import ast

from tests.support.source_tree import PACKAGES, ROOT, modules

MAX_LINES = 400
MAX_FUNCTION_LINES = 60
# The calls of argparse that declare a command line.
ARGPARSE_CALLS = frozenset(
    {"ArgumentParser", "add_argument", "add_argument_group", "add_mutually_exclusive_group", "add_parser",
     "add_subparsers", "set_defaults"}
)  # fmt: skip
BRANCHES = (ast.If, ast.IfExp, ast.For, ast.While, ast.Try, ast.With, ast.Match, ast.comprehension)


def test_no_module_is_over_400_lines():
    big = {}
    for folder in (*PACKAGES, "tests", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            if "fixtures" in path.parts or "weak_models" in path.parts:
                continue
            lines = len(path.read_text(encoding="utf-8").splitlines())
            if lines > MAX_LINES:
                big[str(path.relative_to(ROOT))] = lines
    assert big == {}


def argparse_table(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A function that only declares a command line: no branch, loop or comprehension anywhere in it, and at
    least half of its statements call argparse (``add_argument``, ``add_parser``, ...)."""
    if any(isinstance(node, BRANCHES) for node in ast.walk(function)):
        return False
    statements = function.body
    declaring = [
        statement
        for statement in statements
        if any(
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ARGPARSE_CALLS
            for node in ast.walk(statement)
        )
    ]
    return 2 * len(declaring) >= len(statements)


def long_functions(source: str) -> list[tuple[str, int]]:
    """Every function (methods and nested ones too) longer than MAX_FUNCTION_LINES, with its length, except
    argparse tables."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            assert node.end_lineno is not None
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            lines = node.end_lineno - start + 1
            if lines > MAX_FUNCTION_LINES and not argparse_table(node):
                found.append((node.name, lines))
    return found


def test_no_function_is_over_60_lines():
    long = [
        f"{path.relative_to(ROOT)}: {name} ({lines} lines)"
        for path in modules().values()
        for name, lines in long_functions(path.read_text(encoding="utf-8"))
    ]
    assert long == []


def test_the_length_check_finds_a_long_function_and_passes_a_table():
    body = "".join(f"    x{i} = {i}\n" for i in range(60))
    options = "".join(f'    parser.add_argument("--o{i}")\n' for i in range(60))
    source = (
        f"def long():\n{body}\n"  # 61 lines
        f"def short():\n{body[: -len('    x59 = 59') - 1]}\n"  # 60 lines
        f"def table(parser):\n    sub = parser.add_subparsers()\n{options}\n"
        f"def looping_table(parser):\n    for name in NAMES:\n        parser.add_argument(name)\n{options}\n"
        f"class C:\n    def method(self):\n    {body.replace(chr(10) + '    ', chr(10) + '        ')}"
    )
    assert long_functions(source) == [("long", 61), ("looping_table", 63), ("method", 61)]
