"""Scale raw pixel inputs (``AddRescaling``) in PyTorch code: divide the data by 255 where it becomes a
float tensor (``torch.tensor(X, dtype=torch.float32) / 255.0``), or, when the code makes none, at the top
of the model's ``forward``. A ``transforms.ToTensor()``/``Normalize`` or a division by 255 already there
scales the inputs: nothing to do."""

from __future__ import annotations

import re
from typing import Any

import libcst as cst
from libcst.codemod import CodemodContext

from tweak.codemods.torch_edits import Edits
from tweak.torch_flow import outermost, read
from tweak.torch_model import Model, Source

DESCRIPTION = (
    "Divide the inputs by 255 where they become float tensors (or in forward) unless already scaled."
)
SCALERS = ("ToTensor", "Normalize", "ToDtype", "Rescale")
FLOATS = ("torch.float32", "torch.float", "torch.float64", "torch.double", "torch.half", "torch.float16")
LABELS = re.compile(r"(^|[^a-z])(y|labels?|targets?|classes)([^a-z]|$)")
MAKERS = ("torch.tensor", "torch.as_tensor", "torch.from_numpy")


def add_rescaling(
    tweak: Any, module: cst.Module, context: CodemodContext, quote: str
) -> tuple[cst.Module, str]:
    src = read(module)
    scaled = _already_scaled(src)
    if scaled:
        raise tweak.not_applicable(f"the inputs are scaled already ({scaled})")
    divisor = float(tweak.divisor)
    number = cst.Float(f"{divisor:g}.0") if divisor.is_integer() else cst.Float(repr(divisor))
    edits = Edits()
    sites = _conversions(src)
    for node in sites:
        parent = src.parents.get(node)
        parens = isinstance(parent, cst.Attribute) and parent.value is node
        edits.replace[node] = lambda n, p=parens: _divided(n, number, p)  # type: ignore[misc]
    if sites:
        lines = ", ".join(str(src.line(n)) for n in sites)
        said = f"divide the inputs by {divisor:g} where they become float tensors (line {lines})"
        return src.module.visit(edits), said
    return _in_forward(tweak, src, edits, number)


def _divided(node: cst.CSTNode, number: cst.Float, parens: bool) -> cst.CSTNode:
    assert isinstance(node, cst.BaseExpression)
    wrap = {"lpar": [cst.LeftParen()], "rpar": [cst.RightParen()]} if parens else {}
    return cst.BinaryOperation(node, cst.Divide(), number, **wrap)  # type: ignore[arg-type]


def _already_scaled(src: Source) -> str | None:
    code = src.module.code
    for name in SCALERS:
        match = re.search(rf"\b{name}\(", code)
        if match:
            return f"{name} at line {code.count(chr(10), 0, match.start()) + 1}"
    match = re.search(r"(/=?\s*255\b|\.div_?\(\s*255)", code)
    if match:
        return f"a division by 255 at line {code.count(chr(10), 0, match.start()) + 1}"
    return None


def _conversions(src: Source) -> list[cst.Call]:
    """Where the data becomes a float tensor: ``torch.tensor(X, dtype=torch.float32)``,
    ``torch.FloatTensor(X)``, ``torch.from_numpy(X).float()``; labels (y, targets) are left alone."""
    found: list[cst.Call] = []
    for call in src.calls:  # outer calls first: a conversion inside one found is not found again
        if (_made_float(src, call) or _float_of_made(src, call)) and not _inside(src, call, found):
            found.append(call)
    return found


def _inside(src: Source, node: cst.CSTNode, found: list[cst.Call]) -> bool:
    parent = src.parents.get(node)
    while parent is not None:
        if parent in found:
            return True
        parent = src.parents.get(parent)
    return False


def _made_float(src: Source, node: cst.Call) -> bool:
    full = src.names.full(node.func) or ""
    made = full == "torch.FloatTensor" or (full in MAKERS and _float_dtype(src, node))
    return made and bool(node.args) and not _label(node.args[0].value)


def _float_of_made(src: Source, node: cst.Call) -> bool:
    """``torch.from_numpy(X).float()``"""
    func = node.func
    if not (isinstance(func, cst.Attribute) and func.attr.value == "float" and not node.args):
        return False
    inner = func.value
    if not isinstance(inner, cst.Call) or src.names.full(inner.func) not in MAKERS:
        return False
    return bool(inner.args) and not _label(inner.args[0].value)


def _label(node: cst.CSTNode) -> bool:
    return bool(LABELS.search(_text(node).lower()))


def _float_dtype(src: Source, call: cst.Call) -> bool:
    dtype = next((a.value for a in call.args if a.keyword and a.keyword.value == "dtype"), None)
    return dtype is not None and src.names.full(dtype) in FLOATS


def _text(node: cst.CSTNode) -> str:
    return cst.Module([]).code_for_node(node)


def _in_forward(tweak: Any, src: Source, edits: Edits, number: cst.Float) -> tuple[cst.Module, str]:
    """``x = x / 255.0`` first in the model's forward, when the code makes no float tensor itself."""
    models = [m for m in outermost(src.models) if m.forward is not None]
    if not models:
        raise tweak.not_applicable(
            "no float tensor is made from the data, and no forward to scale the inputs in"
        )
    forward = models[-1].forward
    assert forward is not None
    bypass = _bypassing(models[-1])
    if bypass:
        raise tweak.not_applicable(
            f"{bypass} applies the model's layers without forward: scaling in forward would differ between "
            "training and evaluation"
        )
    params = [p.name.value for p in forward.params.params]
    if len(params) < 2:
        raise tweak.not_applicable("the model's forward takes no input")
    if not isinstance(forward.body, cst.IndentedBlock):
        raise tweak.not_applicable("the model's forward is written on one line")
    name = params[1]
    line = cst.parse_statement(f"{name} = {name} / {_text(number)}")
    body = list(forward.body.body)
    first = body[0]
    docstring = isinstance(first, cst.SimpleStatementLine) and isinstance(first.body[0], cst.Expr)
    anchor = body[1] if docstring and len(body) > 1 else first
    edits.before.setdefault(anchor, []).append(line)
    said = f"divide the inputs by {float(number.value):g} first in {models[-1].name}.forward"
    return src.module.visit(edits), said


def _bypassing(model: Model) -> str | None:
    """A method of the model (a Lightning ``training_step``) that calls its layers, not ``forward``."""
    if model.cls is None:
        return None
    for method in model.cls.body.body:
        if not isinstance(method, cst.FunctionDef) or method.name.value in ("__init__", "forward"):
            continue
        for call in _calls_in(method):
            func = call.func
            if not (isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name)):
                continue
            if func.value.value == "self" and func.attr.value in model.modules:
                return f"{method.name.value}()"
    return None


def _calls_in(node: cst.CSTNode) -> list[cst.Call]:
    found: list[cst.Call] = []

    class Calls(cst.CSTVisitor):
        def visit_Call(self, call: cst.Call) -> None:  # noqa: N802 (LibCST's name)
            found.append(call)

    node.visit(Calls())
    return found
