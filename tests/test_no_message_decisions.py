"""No decision reads someone's words: the code decides on types (an exception's class, a failure class, a
result code), never on the text of an error message or a process's output."""

from __future__ import annotations

import ast

from tests.support.source_tree import ROOT, modules

# Names that hold someone's words about a failure: an exception's message, a process's output, a reason.
MESSAGE_NAMES = frozenset(
    {"error", "err", "message", "msg", "stderr", "stdout", "output", "said", "explanation"}
)
MESSAGE_SUFFIXES = ("_error", "_message", "_stderr", "_stdout", "_output")
TEXT_METHODS = frozenset({"startswith", "endswith", "find", "rfind", "index", "count"})
# Where a message is all there is, each with why; the check fails when an entry no longer matches, too.
WORDS_ONLY = {
    (
        "mlops/runtime/docker/runtime.py",
        "'device driver' in said",
    ): "the engine says a missing GPU only in words",
    ("mlops_harness/compat.py", "'pydot' not in str(e)"): "Keras raises a plain ImportError, without a name",
    ("mlops_harness/compat.py", "'graphviz' not in str(e).lower()"): "the same error of Keras",
    ("mlops_harness/failures.py", 'f"\'{f}" in message'): "an ImportError raised without its module's name",
    ("mlops_harness/failures.py", "f' {f}.' in message"): "the same: the module only in its words",
    (
        "mlops/envs/uv.py",
        "line.startswith(('×', '╰', 'help:'))",
    ): "which of uv's lines to show; decides nothing",
    (
        "jobs/views.py",
        "c.error.startswith(f'line {c.error_line}:')",
    ): "not saying the line twice; decides nothing",
}


def _words(node: ast.AST, exceptions: set[str], lines: set[str]) -> bool:
    """Whether ``node`` holds a message: a message's name, ``str()`` of a caught exception, a line of one,
    or text made of one (``error.lower()``, ``message.splitlines()``)."""
    if isinstance(node, ast.Name):
        return node.id in MESSAGE_NAMES or node.id.endswith(MESSAGE_SUFFIXES) or node.id in lines
    if isinstance(node, ast.Attribute):
        return node.attr in MESSAGE_NAMES or node.attr.endswith(MESSAGE_SUFFIXES)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "str" and node.args:
        arg = node.args[0]
        return (isinstance(arg, ast.Name) and arg.id in exceptions) or _words(arg, exceptions, lines)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr not in TEXT_METHODS and _words(node.func.value, exceptions, lines)
    if isinstance(node, ast.BoolOp):
        return any(_words(v, exceptions, lines) for v in node.values)
    return False


def _literal(node: ast.AST) -> bool:
    if isinstance(node, ast.Tuple):
        return all(_literal(e) for e in node.elts)
    return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str))


def message_tests(tree: ast.AST) -> list[ast.AST]:
    """The places that test text against a message: ``"X" in error``, ``message.startswith("X")``,
    ``error == "X"``, and the same on ``str(e)`` of a caught exception or a line of a message."""
    exceptions = {h.name for h in ast.walk(tree) if isinstance(h, ast.ExceptHandler) and h.name}
    lines: set[str] = set()
    for node in ast.walk(tree):  # a line of a message is a message: ``for line in stderr.splitlines()``
        loop = isinstance(node, ast.For | ast.comprehension) and isinstance(node.target, ast.Name)
        if loop and any(_words(n, exceptions, set()) for n in ast.walk(node.iter)):
            lines.add(node.target.id)
    found: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            left = node.left
            for op, right in zip(node.ops, node.comparators, strict=True):
                contains = (
                    isinstance(op, ast.In | ast.NotIn) and _literal(left) and _words(right, exceptions, lines)
                )
                equal = isinstance(op, ast.Eq | ast.NotEq) and (
                    (_literal(left) and _words(right, exceptions, lines))
                    or (_literal(right) and _words(left, exceptions, lines))
                )
                if contains or equal:
                    found.append(node)
                left = right
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in TEXT_METHODS
            and node.args
            and _literal(node.args[0])
            and _words(node.func.value, exceptions, lines)
        ):
            found.append(node)
    return found


def test_no_decision_reads_an_error_message():
    """Decide on types (an exception's class, a failure class, a result code), never on someone's words."""
    found = set()
    for path in modules().values():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in message_tests(tree):
            found.add((str(path.relative_to(ROOT)), ast.unparse(node)))
    assert sorted(found - set(WORDS_ONLY)) == []
    assert sorted(set(WORDS_ONLY) - found) == []  # an entry that no longer matches goes too


def test_the_message_check_finds_what_it_is_for():
    planted = """
def f(first, result):
    error = first.error or ""
    if "SyntaxError" in error or error.startswith("NameError") or first.message == "boom":
        return 1
    for line in result.stderr.splitlines():
        if line.startswith("warning: "):
            return 2
    try:
        pass
    except OSError as e:
        if "locked" in str(e).lower():
            return 3
    if first.error_type == "SyntaxError" or "x" in first.names or text.startswith("#"):
        return 4
"""
    said = sorted(ast.unparse(n) for n in message_tests(ast.parse(planted)))
    assert said == sorted(
        [
            "'SyntaxError' in error",
            "first.message == 'boom'",
            "'locked' in str(e).lower()",
            "error.startswith('NameError')",
            "line.startswith('warning: ')",
        ]
    )
