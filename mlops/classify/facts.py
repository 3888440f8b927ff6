"""Facts the classifier decides from: what a script imports and which of those names it uses, where.

Two gatherers fill the same :class:`Facts`. :func:`gather` walks the syntax tree (``ast``, iteratively, so a
deep expression cannot exhaust the stack). :func:`gather_tokens` is the tolerant fallback for code that
does not parse as Python 3 (Python 2 prints, mixed tabs): it scans the token stream for dotted names and
import statements. Neither looks inside strings or comments, and neither decides anything.
"""

from __future__ import annotations

import ast
import io
import keyword
import tokenize
from dataclasses import dataclass, field
from typing import Any, NamedTuple

# The small facts are named tuples: a script yields hundreds of them and tuples are the cheapest to build.


class Ref(NamedTuple):
    """A use of an imported name, resolved to its full dotted name (``keras.layers.Conv2D``)."""

    name: str
    line: int
    called: bool
    origin: str | None = None  # "model.py:12" when the use was found in a followed local module


class MethodCall(NamedTuple):
    """``something.NAME(...)`` whatever ``something`` is: ``model.fit``, ``loss.backward``."""

    name: str
    line: int


class KeywordArg(NamedTuple):
    """``func(..., NAME=...)``; ``func`` is the resolved dotted name when known, else the written one."""

    func: str
    name: str
    line: int


class ImportFact(NamedTuple):
    """One imported module (``from . import x`` has level 1 and module ``""``), with the names taken."""

    module: str
    level: int
    names: tuple[str, ...]
    line: int


@dataclass
class Facts:
    imports: list[ImportFact] = field(default_factory=list)
    refs: list[Ref] = field(default_factory=list)
    methods: list[MethodCall] = field(default_factory=list)
    keywords: list[KeywordArg] = field(default_factory=list)
    syntax_error: str | None = None  # set when the tree could not be built and tokens were scanned
    error_line: int | None = None
    followed: list[str] = field(default_factory=list)  # local modules whose facts were merged in
    # What the module's own imports bind (name -> dotted path) and its star imports: what a
    # ``from this_module import *`` elsewhere brings in.
    bound: dict[str, str] = field(default_factory=dict)
    stars: list[str] = field(default_factory=list)
    # Calls of names nothing imports (``Conv2D(...)`` in a fragment without imports), as written.
    unbound: list[Ref] = field(default_factory=list)


class _Aliases:
    """Name -> dotted module path, as the script's imports bind them; star imports kept apart."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.stars: list[str] = []

    def add(self, node: ast.Import | ast.ImportFrom, facts: Facts) -> None:
        line = node.lineno
        if isinstance(node, ast.Import):
            for a in node.names:
                facts.imports.append(ImportFact(a.name, 0, (), line))
                if a.asname:
                    self.names[a.asname] = a.name
                else:  # `import a.b.c` binds `a`
                    root = a.name.split(".")[0]
                    self.names.setdefault(root, root)
            return
        module = node.module or ""
        taken = tuple(a.name for a in node.names)
        facts.imports.append(ImportFact(module, node.level, taken, line))
        if node.level:  # relative imports are local code; the caller follows them
            return
        for a in node.names:
            if a.name == "*":
                self.stars.append(module)
            else:
                self.names[a.asname or a.name] = f"{module}.{a.name}"

    def resolve(self, parts: list[str]) -> list[str]:
        """The full names a dotted chain may stand for (several only through star imports)."""
        root = parts[0]
        if root in self.names:
            return [".".join([self.names[root], *parts[1:]])]
        return [".".join([star, *parts]) for star in self.stars]


def _chain(node: ast.AST) -> list[str] | None:
    """``a.b.c`` as ["a", "b", "c"], or None when the chain does not start at a plain name."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    parts.reverse()
    return parts


# Fields that never hold a node worth visiting: names, flags, and the operator/context singletons.
_SCALAR_FIELDS = frozenset(
    {"ctx", "op", "ops", "id", "attr", "name", "names", "asname", "module", "level", "type_comment", "kind",
     "conversion", "is_async", "simple", "kwd_attrs", "type_ignores"}
)  # fmt: skip


_Collected = tuple[
    list[ast.Import | ast.ImportFrom], list[ast.Attribute | ast.Name], list[ast.Call], set[int], set[int]
]


def _collect(tree: ast.AST) -> _Collected:
    """One iterative pass over the tree (no recursion: a deep expression cannot exhaust the stack)
    that keeps only the nodes the facts come from."""
    imports: list[ast.Import | ast.ImportFrom] = []
    chains: list[ast.Attribute | ast.Name] = []
    calls: list[ast.Call] = []
    inner: set[int] = set()  # Name/Attribute nodes that are the left part of a longer chain
    called: set[int] = set()
    # Any: a node's class is tested with `type(node) is ...` (faster than isinstance on the hot path), which
    # mypy does not narrow through.
    stack: list[Any] = [tree]
    pop, push, AST = stack.pop, stack.append, ast.AST
    Attribute, Name, Call, Constant = ast.Attribute, ast.Name, ast.Call, ast.Constant
    imported = (ast.Import, ast.ImportFrom)
    fields_of: dict[type, tuple[str, ...]] = {}  # the fields of each node type that may hold nodes
    while stack:
        node = pop()
        t = type(node)
        if t is Attribute:
            inner.add(id(node.value))
            chains.append(node)
            push(node.value)
            continue
        if t is Name:
            chains.append(node)
            continue
        if t is Constant:  # strings never count
            continue
        if t in imported:
            imports.append(node)
            continue
        if t is Call:
            calls.append(node)
            called.add(id(node.func))
        fields = fields_of.get(t)
        if fields is None:
            fields = fields_of[t] = tuple(f for f in t._fields if f not in _SCALAR_FIELDS)
        for name in fields:
            value = getattr(node, name, None)
            if type(value) is list:
                for item in value:
                    if isinstance(item, AST):
                        push(item)
            elif isinstance(value, AST):
                push(value)
    return imports, chains, calls, inner, called


def gather(tree: ast.AST) -> Facts:
    """Collect the facts of a parsed module."""
    facts = Facts()
    aliases = _Aliases()
    imports, chains, calls, inner, called = _collect(tree)
    for statement in sorted(imports, key=lambda n: n.lineno):
        aliases.add(statement, facts)
    for node in chains:
        if id(node) in inner or type(node.ctx) is not ast.Load:
            continue
        parts = _chain(node)
        if parts is None:
            continue
        names = aliases.resolve(parts)
        for name in names:
            facts.refs.append(Ref(name, node.lineno, id(node) in called))
        if not names and id(node) in called and parts[0][:1].isupper():
            facts.unbound.append(Ref(".".join(parts), node.lineno, True))
    for call in calls:
        func = call.func
        parts = _chain(func)
        if isinstance(func, ast.Attribute):
            facts.methods.append(MethodCall(func.attr, call.lineno))
        if not call.keywords:
            continue
        resolved = aliases.resolve(parts) if parts else []
        target = resolved[0] if resolved else (".".join(parts) if parts else "")
        for kw in call.keywords:
            if kw.arg:
                facts.keywords.append(KeywordArg(target, kw.arg, call.lineno))
    _exports(facts, aliases)
    return facts


def _exports(facts: Facts, aliases: _Aliases) -> None:
    facts.bound = dict(aliases.names)
    facts.stars = list(aliases.stars)
    _sort(facts)


def _sort(facts: Facts) -> None:
    facts.imports.sort(key=lambda f: f.line)
    facts.refs.sort(key=lambda f: f.line)
    facts.methods.sort(key=lambda f: f.line)
    facts.keywords.sort(key=lambda f: f.line)


_SKIP = {tokenize.COMMENT, tokenize.NL, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING}


def _tokens(text: str) -> list[tokenize.TokenInfo]:
    """Every token the tokenizer gives before it gives up. Indentation is dropped first: names do not
    depend on it, and inconsistent tabs would otherwise stop the scan."""
    flat = "\n".join(line.lstrip(" \t\f") for line in text.split("\n"))
    out: list[tokenize.TokenInfo] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(flat).readline):
            if tok.type not in _SKIP:
                out.append(tok)
    except (tokenize.TokenError, SyntaxError):
        pass
    return out


def _statements(tokens: list[tokenize.TokenInfo]) -> list[list[tokenize.TokenInfo]]:
    stmts: list[list[tokenize.TokenInfo]] = [[]]
    for tok in tokens:
        if tok.type == tokenize.NEWLINE or (tok.type == tokenize.OP and tok.string == ";"):
            stmts.append([])
        elif tok.type != tokenize.ENDMARKER:
            stmts[-1].append(tok)
    return [s for s in stmts if s]


def gather_tokens(text: str, error: str, error_line: int | None) -> Facts:
    """Collect what can be collected from code that does not parse: dotted names, calls, keywords and
    imports, from the token stream. ``error`` and ``error_line`` say why the tree could not be built."""
    facts = Facts(syntax_error=error, error_line=error_line)
    aliases = _Aliases()
    stmts = _statements(_tokens(text))
    body: list[list[tokenize.TokenInfo]] = []
    for stmt in stmts:
        if stmt[0].type == tokenize.NAME and stmt[0].string in ("import", "from"):
            source = " ".join(t.string for t in stmt)
            try:
                node = ast.parse(source).body[0]
            except (SyntaxError, IndexError, ValueError):
                continue
            if isinstance(node, ast.Import | ast.ImportFrom):
                node.lineno = stmt[0].start[0]
                aliases.add(node, facts)
        else:
            body.append(stmt)
    for stmt in body:
        _scan(stmt, aliases, facts)
    _exports(facts, aliases)
    return facts


def _scan(stmt: list[tokenize.TokenInfo], aliases: _Aliases, facts: Facts) -> None:
    callees: list[str] = []  # the callee of each open bracket ("" when it is not a call)
    i, n = 0, len(stmt)
    while i < n:
        tok = stmt[i]
        if tok.type == tokenize.NAME and not keyword.iskeyword(tok.string):
            after_dot = i > 0 and stmt[i - 1].string == "."
            parts = [tok.string]
            j = i + 1
            while j + 1 < n and stmt[j].string == "." and stmt[j + 1].type == tokenize.NAME:
                parts.append(stmt[j + 1].string)
                j += 2
            is_call = j < n and stmt[j].string == "("
            is_kw = (
                j < n
                and stmt[j].string == "="
                and i > 0
                and stmt[i - 1].string in ("(", ",")
                and callees
                and callees[-1]
            )
            resolved = [] if after_dot else aliases.resolve(parts)
            if is_kw:
                facts.keywords.append(KeywordArg(callees[-1], tok.string, tok.start[0]))
            else:
                for name in resolved:
                    facts.refs.append(Ref(name, tok.start[0], is_call))
            if is_call and (len(parts) > 1 or after_dot):
                facts.methods.append(MethodCall(parts[-1], tok.start[0]))
            if is_call:
                callees.append(resolved[0] if resolved else ".".join(parts))
                j += 1  # the bracket is consumed here
            i = j
            continue
        if tok.string in ("(", "[", "{"):
            callees.append("")
        elif tok.string in (")", "]", "}") and callees:
            callees.pop()
        i += 1
