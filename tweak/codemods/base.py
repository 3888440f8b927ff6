"""What every tweak shares: the Tweak interface, and finding a Keras model's layers in a LibCST tree.

A model is found in the three ways people write one: ``model.add(Layer(...))`` statements,
``Sequential([Layer(...), ...])`` lists, and functional chains ``x = Layer(...)(x)``. Layers are recognised
by their class name as written (``Dense``, ``layers.Dense``, ``tf.keras.layers.Dense``, ``L.Conv2D``,
legacy ``Convolution2D``), and a new layer is spelled with the same prefix as its neighbours, so the file's
own import style keeps working.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import libcst as cst
import libcst.matchers as m
from libcst.codemod import CodemodContext
from libcst.codemod.visitors import AddImportsVisitor

from mlops.classify import Framework
from mlops.errors import MlopsError
from tweak.facts import LAYER_KINDS
from tweak.framework import code_of

# A framework's rewrite of a tweak: (the tweak, the module, the codemod context, the file's quote) -> the
# changed module and what was done, in words.
Rewrite = Callable[[Any, cst.Module, CodemodContext, str], tuple[cst.Module, str]]


class TweakNotApplicable(MlopsError):
    """The tweak does not fit this code; ``reason`` says why, in words a user understands."""

    def __init__(self, tweak: str, reason: str) -> None:
        super().__init__(f"{tweak}: {reason}")
        self.tweak = tweak
        self.reason = reason


@dataclass(frozen=True)
class Edit:
    """What a tweak made of a source: the new text, and in words what changed."""

    source: str
    description: str


class Tweak:
    """One codemod. Each subclass is a frozen dataclass whose fields are its typed parameters."""

    NAME: ClassVar[str] = "tweak"
    DESCRIPTION: ClassVar[str] = ""
    # The rewrite for each framework's code, the one place a tweak switches on the framework (which one a
    # source is: tweak/framework.py). The Keras rewrite is the class's ``transform`` method.
    REWRITES: ClassVar[Mapping[Framework, Rewrite]] = {}

    def edit(self, source: str, framework: Framework | str | None = None) -> Edit:
        """The source with the tweak made; raises TweakNotApplicable when it does not fit.

        ``framework`` is the source's as job 2 recorded it; without it the classifier is asked."""
        try:
            module = cst.parse_module(source)
        except cst.ParserSyntaxError as e:
            raise self.not_applicable(f"the source does not parse ({e.message} at line {e.raw_line})") from e
        code = code_of(source, framework)
        rewrite = self.REWRITES.get(code)
        if rewrite is None:
            raise self.not_applicable(f"it has no rewrite for {code} code")
        context = CodemodContext()
        # New strings take the quotes the file uses most.
        quote = '"' if source.count('"') >= source.count("'") else "'"
        new, description = rewrite(self, module, context, quote)
        new = AddImportsVisitor(context).transform_module(new) if context.scratch else new
        if new.code == source:
            raise self.not_applicable("nothing to change")
        return Edit(new.code, description)

    def apply(self, source: str, framework: Framework | str | None = None) -> str:
        """The source with the tweak made (``edit`` without the description)."""
        return self.edit(source, framework).source

    def transform(self, module: cst.Module, context: CodemodContext, quote: str) -> tuple[cst.Module, str]:
        """The changed module and what was done, in words."""
        raise NotImplementedError

    def not_applicable(self, reason: str) -> TweakNotApplicable:
        return TweakNotApplicable(self.NAME, reason)

    def to_json(self) -> list[Any]:
        """``[name, {parameter: value}]``, as the ledger records a trial's tweaks."""
        params = {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]
        return [self.NAME, params]


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


# -- names and literals -------------------------------------------------------------------------------


def dotted(node: cst.BaseExpression) -> str | None:
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        base = dotted(node.value)
        return f"{base}.{node.attr.value}" if base else None
    return None


def last_name(node: cst.BaseExpression) -> str | None:
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        return node.attr.value
    return None


def layer_kind(call: cst.BaseExpression) -> str | None:
    """conv, pool, dense, flatten, dropout, ... for a layer constructor call ``Dense(...)``."""
    if isinstance(call, cst.Call):
        return LAYER_KINDS.get(last_name(call.func) or "")
    return None


def sibling(func: cst.BaseExpression, name: str) -> cst.BaseExpression:
    """``layers.Dense`` -> ``layers.<name>``; a bare ``Dense`` -> a bare ``<name>``."""
    if isinstance(func, cst.Attribute):
        return func.with_changes(attr=cst.Name(name))
    return cst.Name(name)


def needs_import(context: CodemodContext, func: cst.BaseExpression, name: str, module: cst.Module) -> None:
    """A bare name (``Dense`` imported from a module) gets its sibling imported from the same module."""
    if not isinstance(func, cst.Name):
        return
    source_module = imported_from(module, func.value)
    if source_module:
        AddImportsVisitor.add_needed_import(context, source_module, name)


def imported_from(module: cst.Module, name: str) -> str | None:
    for stmt in module.body:
        if not isinstance(stmt, cst.SimpleStatementLine):
            continue
        for small in stmt.body:
            if isinstance(small, cst.ImportFrom) and small.module is not None:
                names = small.names
                if isinstance(names, cst.ImportStar):
                    continue
                for alias in names:
                    bound = dotted(alias.asname.name) if alias.asname else dotted(alias.name)
                    if bound == name:
                        return dotted(small.module)
    return None


def literal(value: Any, quote: str = '"') -> cst.BaseExpression:
    if isinstance(value, str) and quote not in value and "\\" not in value:
        return cst.SimpleString(f"{quote}{value}{quote}")
    if isinstance(value, float):
        return cst.parse_expression(f"{value:.6g}" if "e" not in f"{value:.6g}" else repr(value))
    return cst.parse_expression(repr(value))


def int_of(node: cst.BaseExpression | None) -> int | None:
    if isinstance(node, cst.Integer):
        return int(node.value)
    return None


def arg_value(call: cst.Call, index: int, *names: str) -> cst.Arg | None:
    """The argument given by keyword (one of ``names``) or at position ``index``."""
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value in names:
            return arg
    positional = [a for a in call.args if a.keyword is None and not a.star]
    return positional[index] if len(positional) > index else None


def with_arg(call: cst.Call, index: int, names: Sequence[str], value: cst.BaseExpression) -> cst.Call:
    """The call with that argument replaced, or added as ``names[0]=value``."""
    target = arg_value(call, index, *names)
    if target is not None:
        return call.with_changes(args=[a.with_changes(value=value) if a is target else a for a in call.args])
    new = cst.Arg(
        value=value,
        keyword=cst.Name(names[0]),
        equal=cst.AssignEqual(
            whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")
        ),
    )
    args = list(call.args)
    if args and args[-1].comma == cst.MaybeSentinel.DEFAULT:
        args[-1] = args[-1].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
    elif args and isinstance(args[-1].comma, cst.Comma):
        last = args[-1]
        args[-1] = last.with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
    return call.with_changes(args=[*args, new])


# -- the model's layers, wherever they are ------------------------------------------------------------


@dataclass(frozen=True)
class LayerSite:
    """One layer of the model and where it sits, in source order."""

    call: cst.Call  # the layer's constructor call
    kind: str
    index: int  # position among the model's layers


class FindLayers(m.MatcherDecoratableVisitor):
    def __init__(self) -> None:
        super().__init__()
        self.sites: list[tuple[cst.Call, str]] = []

    def visit_Call(self, node: cst.Call) -> None:  # noqa: N802
        kind = layer_kind(node)
        if kind is None:
            return
        self.sites.append((node, kind))


def layers_of(module: cst.Module) -> list[LayerSite]:
    finder = FindLayers()
    module.visit(finder)
    return [LayerSite(call, kind, i) for i, (call, kind) in enumerate(finder.sites)]


def hidden_dense(sites: list[LayerSite]) -> list[LayerSite]:
    dense = [s for s in sites if s.kind == "dense"]
    return dense[:-1]


class InsertLayer(cst.CSTTransformer):
    """Inserts layer calls before (or after) a given layer call, in whichever style the model uses."""

    def __init__(self, anchor: cst.Call, new_calls: list[cst.Call], after: bool = False) -> None:
        super().__init__()
        self.anchor = anchor
        self.new_calls = new_calls
        self.after = after
        self.done = False

    # Sequential([..., anchor, ...])
    def leave_List(self, original: cst.List, updated: cst.List) -> cst.List:  # noqa: N802
        for i, element in enumerate(original.elements):
            if element.value is self.anchor:
                self.done = True
                elements = list(updated.elements)
                # The separator between two elements as the list writes it (a newline and indent, or a space).
                between = [e.comma for e in elements[:-1] if isinstance(e.comma, cst.Comma)]
                comma = between[-1] if between else cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
                new = [cst.Element(value=c, comma=comma) for c in self.new_calls]
                if self.after:
                    if not isinstance(elements[i].comma, cst.Comma) or i == len(elements) - 1:
                        trailing = elements[i].comma
                        elements[i] = elements[i].with_changes(comma=comma)
                        new[-1] = new[-1].with_changes(comma=trailing)
                    return updated.with_changes(elements=elements[: i + 1] + new + elements[i + 1 :])
                return updated.with_changes(elements=elements[:i] + new + elements[i:])
        return updated

    # model.add(anchor)  or  x = anchor(x)
    def leave_IndentedBlock(
        self, original: cst.IndentedBlock, updated: cst.IndentedBlock
    ) -> cst.IndentedBlock:  # noqa: N802
        return updated.with_changes(body=self._statements(original.body, updated.body))

    def leave_Module(self, original: cst.Module, updated: cst.Module) -> cst.Module:  # noqa: N802
        return updated.with_changes(body=self._statements(original.body, updated.body))

    def _statements(
        self, original: Sequence[cst.BaseStatement], updated: Sequence[cst.BaseStatement]
    ) -> list[cst.BaseStatement]:
        body = list(updated)
        for i, stmt in enumerate(original):
            if self.done or not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
                continue
            small = stmt.body[0]
            new_lines = self._around(small)
            if new_lines is None:
                continue
            self.done = True
            # New lines keep the statement's form but not its comment (that belongs to the anchor).
            plain = cst.TrailingWhitespace()
            lines = [
                stmt.with_changes(body=[line], leading_lines=[], trailing_whitespace=plain)
                for line in new_lines
            ]
            if self.after:
                return body[: i + 1] + lines + body[i + 1 :]
            kept = updated[i]
            assert isinstance(kept, cst.SimpleStatementLine)  # the statement the anchor is in
            first = lines[0].with_changes(leading_lines=kept.leading_lines)
            rest = [kept.with_changes(leading_lines=[])]
            return body[:i] + [first, *lines[1:]] + rest + body[i + 1 :]
        return body

    def _around(self, small: cst.BaseSmallStatement) -> list[cst.BaseSmallStatement] | None:
        # model.add(anchor)
        if isinstance(small, cst.Expr) and isinstance(small.value, cst.Call):
            outer = small.value
            if (
                isinstance(outer.func, cst.Attribute)
                and outer.func.attr.value == "add"
                and outer.args
                and outer.args[0].value is self.anchor
            ):
                return [
                    small.with_changes(value=outer.with_changes(args=[cst.Arg(c)])) for c in self.new_calls
                ]
        # x = anchor(x)  /  outputs = anchor(x)
        if isinstance(small, cst.Assign) and isinstance(small.value, cst.Call):
            outer = small.value
            if (
                outer.func is self.anchor
                and len(outer.args) == 1
                and isinstance(outer.args[0].value, cst.Name)
            ):
                flow = outer.args[0].value if not self.after else small.targets[0].target
                if not isinstance(flow, cst.Name):
                    return None
                lines: list[cst.BaseSmallStatement] = []
                for c in self.new_calls:
                    lines.append(
                        cst.Assign(
                            targets=[cst.AssignTarget(cst.Name(flow.value))],
                            value=cst.Call(func=c, args=[cst.Arg(cst.Name(flow.value))]),
                        )
                    )
                return lines
        return None


def insert_layers(
    module: cst.Module,
    anchor: cst.Call,
    calls: list[cst.Call],
    after: bool = False,
    tweak: Tweak | None = None,
) -> cst.Module:
    inserter = InsertLayer(anchor, calls, after)
    new = module.visit(inserter)
    if not inserter.done:
        where = "model.add(...), a Sequential([...]) list or a functional x = Layer(...)(x) line"
        raise (tweak or Tweak()).not_applicable(f"the layer is not in {where}")
    return new


def make_call(func: cst.BaseExpression, args: list[tuple[str | None, Any]], quote: str = '"') -> cst.Call:
    built = []
    for keyword, value in args:
        expr = value if isinstance(value, cst.BaseExpression) else literal(value, quote)
        if keyword is None:
            built.append(cst.Arg(expr))
        else:
            built.append(
                cst.Arg(
                    expr,
                    keyword=cst.Name(keyword),
                    equal=cst.AssignEqual(
                        whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")
                    ),
                )
            )
    return cst.Call(func=func, args=built)
