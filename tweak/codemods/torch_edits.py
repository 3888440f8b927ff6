"""What the PyTorch codemods share: a plan of edits on the nodes that tweak/torch_flow.py found, applied
in one pass, and the ways a layer is added to a model (an element of its Sequential, or a ``self.<name>``
bound in ``__init__`` and applied in ``forward``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import libcst as cst
from libcst.codemod import CodemodContext
from libcst.codemod.visitors import AddImportsVisitor

from tweak.codemods.base import arg_value, literal, make_call, sibling, with_arg
from tweak.torch_flow import outermost
from tweak.torch_model import Model, Site, Source

Build = Callable[[cst.BaseExpression], cst.BaseExpression]  # wraps the tensor that flows: x -> F.relu(x)


@dataclass
class CallEdit:
    sets: dict[str, tuple[int, cst.BaseExpression]] = field(
        default_factory=dict
    )  # keyword: (position, value)
    lazy: str | None = None  # the lazy class to become, dropping the input size argument
    drop: tuple[int, str] | None = None
    inserts: list[tuple[int, list[cst.BaseExpression]]] = field(default_factory=list)  # Sequential elements


class Edits(cst.CSTTransformer):
    """Edits planned on the nodes of one tree, made in one pass."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[cst.Call, CallEdit] = {}
        self.replace: dict[cst.CSTNode, Callable[[cst.CSTNode], cst.CSTNode]] = {}
        self.before: dict[cst.BaseStatement, list[cst.BaseStatement]] = {}
        self.after: dict[cst.BaseStatement, list[cst.BaseStatement]] = {}

    def call(self, node: cst.Call) -> CallEdit:
        return self.calls.setdefault(node, CallEdit())

    def set_arg(self, node: cst.Call, arg: tuple[int, str], value: cst.BaseExpression) -> None:
        self.call(node).sets[arg[1]] = (arg[0], value)

    def make_lazy(self, site: Site) -> None:
        edit = self.call(site.call)
        edit.lazy, edit.drop = site.spec.lazy, site.spec.ins

    def empty(self) -> bool:
        return not (self.calls or self.replace or self.before or self.after)

    def on_leave(  # type: ignore[override]  # LibCST's generic hook, typed over CSTNodeT
        self, original_node: cst.CSTNode, updated_node: cst.CSTNode
    ) -> cst.CSTNode | cst.RemovalSentinel | cst.FlattenSentinel[cst.CSTNode]:
        updated = super().on_leave(original_node, updated_node)
        if (
            isinstance(updated, cst.Call)
            and isinstance(original_node, cst.Call)
            and original_node in self.calls
        ):
            updated = _edited(updated, self.calls[original_node])
        if original_node in self.replace and isinstance(updated, cst.CSTNode):
            updated = self.replace[original_node](updated)
        if isinstance(updated, cst.IndentedBlock | cst.Module) and isinstance(original_node, type(updated)):
            updated = updated.with_changes(body=self._around(original_node.body, updated.body))
        return updated

    def _around(
        self, original: Sequence[cst.BaseStatement], updated: Sequence[cst.BaseStatement]
    ) -> list[cst.BaseStatement]:
        body: list[cst.BaseStatement] = []
        for old, new in zip(original, updated, strict=True):
            body += self.before.get(old, [])
            body.append(new)
            body += self.after.get(old, [])
        return body


def _edited(call: cst.Call, edit: CallEdit) -> cst.Call:
    for name, (position, value) in edit.sets.items():
        call = with_arg(call, position, (name,), value)
    for index, values in sorted(edit.inserts, key=lambda p: -p[0]):
        call = insert_args(call, index, values)
    if edit.lazy and edit.drop:
        gone = arg_value(call, edit.drop[0], edit.drop[1])
        args = [a for a in call.args if a is not gone]
        call = call.with_changes(func=sibling(call.func, edit.lazy), args=args)
    return call


def insert_args(call: cst.Call, index: int, values: list[cst.BaseExpression]) -> cst.Call:
    """The call with ``values`` as new positional arguments at ``index``, laid out as its others are."""
    args = list(call.args)
    between = [a.comma for a in args[:-1] if isinstance(a.comma, cst.Comma)]
    comma = between[0] if between else cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
    new = [cst.Arg(v, comma=comma) for v in values]
    if index < len(args):
        return call.with_changes(args=args[:index] + new + args[index:])
    last = args[-1]
    new[-1] = new[-1].with_changes(comma=last.comma, whitespace_after_arg=last.whitespace_after_arg)
    args[-1] = last.with_changes(comma=comma, whitespace_after_arg=cst.SimpleWhitespace(""))
    return call.with_changes(args=args + new)


# -- adding layers --------------------------------------------------------------------------------------


def layer_call(
    like: cst.Call, name: str, args: list[tuple[str | None, object]], context: CodemodContext
) -> cst.Call:
    """A ``nn.<name>(...)`` call spelled as ``like`` is (``nn.Linear`` -> ``nn.ReLU``; a bare name imported)."""
    if isinstance(like.func, cst.Name):
        AddImportsVisitor.add_needed_import(context, "torch.nn", name)
    return make_call(sibling(like.func, name), args)


def free_name(model: Model, base: str) -> str:
    """A name the class does not bind yet: ``conv2`` -> ``conv3``; ``hidden`` -> ``hidden`` or ``hidden2``."""
    match = re.fullmatch(r"(.*?)(\d+)", base)
    stem, n = (match.group(1), int(match.group(2)) + 1) if match else (base, 2)
    if not match and base not in model.attrs:
        return base
    while f"{stem}{n}" in model.attrs:
        n += 1
    return f"{stem}{n}"


def bind_in_init(edits: Edits, anchor: Site, attr: str, call: cst.Call, after: bool) -> None:
    """``self.<attr> = call`` in ``__init__``, next to the statement that binds ``anchor``."""
    assert anchor.stmt is not None  # only layers bound as self.<attr> are anchors here
    target = cst.AssignTarget(cst.Attribute(cst.Name("self"), cst.Name(attr)))
    line = cst.SimpleStatementLine([cst.Assign([target], call)])
    (edits.after if after else edits.before).setdefault(anchor.stmt, []).append(line)


def apply_before(edits: Edits, src: Source, use: cst.Call, tensor: cst.BaseExpression, build: Build) -> None:
    """Make ``build`` apply to ``tensor``, the input of ``use`` in forward: a line ``x = build(x)`` before
    the statement when the input is a plain name, else the input wrapped in place."""
    stmt = src.statement(use)
    if (
        isinstance(tensor, cst.Name)
        and stmt is not None
        and isinstance(src.parents.get(stmt), cst.IndentedBlock)
    ):
        target = cst.AssignTarget(cst.Name(tensor.value))
        line = cst.SimpleStatementLine([cst.Assign([target], build(cst.Name(tensor.value)))])
        edits.before.setdefault(stmt, []).append(line)
        return
    previous = edits.replace.get(tensor)
    edits.replace[tensor] = lambda node: build(previous(node) if previous else node)  # type: ignore[arg-type]


def input_of(call: cst.Call) -> cst.BaseExpression | None:
    """The tensor a call in forward takes: ``x`` of ``self.fc(x)``, ``torch.flatten(x, 1)``, ``x.view(...)``."""
    func = call.func
    if isinstance(func, cst.Attribute) and func.attr.value in ("view", "reshape", "flatten"):
        receiver = func.value
        if not (isinstance(receiver, cst.Name) and receiver.value == "torch"):
            return receiver
    return call.args[0].value if call.args else None


def relu(src: Source, context: CodemodContext) -> Build:
    """``F.relu(x)`` as the file spells the functional module, else ``torch.relu(x)``."""
    functional = src.names.alias("torch.nn.functional")
    prefix = functional or src.names.alias("torch")
    if prefix is None:
        AddImportsVisitor.add_needed_import(context, "torch")
        prefix = "torch"
    func = cst.Attribute(cst.Name(prefix), cst.Name("relu"))
    return lambda x: cst.Call(func, [cst.Arg(x)])


def self_call(attr: str) -> Build:
    return lambda x: cst.Call(cst.Attribute(cst.Name("self"), cst.Name(attr)), [cst.Arg(x)])


def number_arg(call: cst.Call, arg: tuple[int, str] | None) -> int | None:
    found = arg_value(call, arg[0], arg[1]) if arg else None
    return int(found.value.value) if found is not None and isinstance(found.value, cst.Integer) else None


def as_literal(value: float) -> cst.BaseExpression:
    return literal(value)


def main_model(src: Source, kind: str) -> Model | None:
    """The model a layer is added to: the last one in the file whose forward has a layer of ``kind``."""
    found = [m for m in outermost(src.models) if any(s.kind == kind and s.site for s in m.flow or [])]
    return found[-1] if found else None


def anchor_of(model: Model, site: Site) -> Site | None:
    """The layer whose ``__init__`` statement a new ``self.<name>`` is bound next to."""
    if site.stmt is not None:
        return site
    bound = [s for s in model.sites if s.stmt is not None]
    return bound[-1] if bound else None
