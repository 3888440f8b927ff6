"""Finding a module's PyTorch models and following a size through their flow (see tweak/torch_model.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import libcst as cst

from tweak.torch_model import (
    FUNCTIONAL,
    IGNORED,
    TENSOR_METHODS,
    Container,
    Model,
    Site,
    Source,
    Step,
)

SEQUENTIAL = ("torch.nn.Sequential",)
MAX_INLINE = 3  # how deep forward's calls of the class's own methods are followed


def read(module: cst.Module) -> Source:
    """The models of ``module``; edit ``Source.module``, the tree their nodes belong to."""
    src = Source(module)
    src.models = find_models(src)
    return src


def find_models(src: Source) -> list[Model]:
    models: list[Model] = []
    claimed: set[int] = set()  # Sequential calls that belong to a class or to an outer Sequential
    for cls in src.classes:
        model = _class_model(src, cls, claimed)
        if model is not None:
            models.append(model)
    for call in src.calls:
        if id(call) in claimed or not src.is_torch(call, *SEQUENTIAL):
            continue
        container = _container(src, call, claimed)
        sites = _sites_of(container)
        if sites:
            line = src.line(call)
            name = _bound_name(src, call) or f"nn.Sequential at line {line}"
            models.append(Model(name, line, sites, _container_steps(src, container, None)))
    return sorted(models, key=lambda m: m.line)


def outermost(models: list[Model]) -> list[Model]:
    """The models no other model builds (a ResNet, not its blocks), in file order."""
    return [m for m in models if not any(m.name in other.uses for other in models if other is not m)]


def _bound_name(src: Source, call: cst.Call) -> str | None:
    parent = src.parents.get(call)
    if isinstance(parent, cst.Assign) and isinstance(parent.targets[0].target, cst.Name):
        return parent.targets[0].target.value
    return None


def _container(src: Source, call: cst.Call, claimed: set[int]) -> Container:
    claimed.add(id(call))
    container = Container(call, src.line(call))
    args = [a.value for a in call.args]
    if len(call.args) == 1 and isinstance(args[0], cst.Call) and _last(args[0].func) == "OrderedDict":
        container.keyed = True
        inner = args[0].args[0].value if args[0].args else None
        pairs = inner.elements if isinstance(inner, cst.List | cst.Tuple) else []
        args = [p.value.elements[1].value for p in pairs if isinstance(p.value, cst.Tuple)]
    if any(a.star for a in call.args) or any(a.keyword for a in call.args):
        container.items.append("a Sequential built from a list")
        return container
    for index, value in enumerate(args):
        container.items.append(_item(src, value, container, index, claimed))
    return container


def _item(
    src: Source, value: cst.BaseExpression, box: Container, index: int, claimed: set[int]
) -> Site | Container | str:
    if not isinstance(value, cst.Call):
        return f"{_show(value)} (not a layer call)"
    if src.is_torch(value, *SEQUENTIAL):
        return _container(src, value, claimed)
    layer = src.layer(value)
    if layer is None:
        return f"{_show(value.func)}(...)"
    return Site(value, layer[0], layer[1], src.line(value), container=box, index=index)


def _show(node: cst.BaseExpression) -> str:
    return cst.Module([]).code_for_node(node)


def _last(node: cst.BaseExpression) -> str | None:
    if isinstance(node, cst.Name):
        return node.value
    return node.attr.value if isinstance(node, cst.Attribute) else None


def _sites_of(container: Container) -> list[Site]:
    out: list[Site] = []
    for item in container.items:
        if isinstance(item, Site):
            out.append(item)
        elif isinstance(item, Container):
            out.extend(_sites_of(item))
    return out


def _container_steps(src: Source, container: Container, use: cst.Call | None) -> list[Step]:
    steps: list[Step] = []
    for item in container.items:
        if isinstance(item, Site):
            steps.append(Step(item.spec.kind, item.call, item.line, item, use))
        elif isinstance(item, Container):
            steps.extend(_container_steps(src, item, use))
        else:
            steps.append(Step("opaque", use or container.call, container.line, what=str(item)))
    return steps


# -- a model class ------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Class:
    src: Source
    methods: dict[str, cst.FunctionDef]
    layers: dict[str, Site] = field(default_factory=dict)
    boxes: dict[str, Container] = field(default_factory=dict)
    others: dict[str, str] = field(default_factory=dict)  # self.<attr> bound to something else
    uses: set[str] = field(default_factory=set)  # the classes it builds


def _class_model(src: Source, cls: cst.ClassDef, claimed: set[int]) -> Model | None:
    methods = {f.name.value: f for f in cls.body.body if isinstance(f, cst.FunctionDef)}
    init = methods.get("__init__")
    if init is None:
        return None
    info = _Class(src, methods)
    for stmt, attr, value in _self_assignments(init):
        if not isinstance(value, cst.Call):
            info.others[attr] = _show(value)
        elif src.is_torch(value, *SEQUENTIAL):
            info.boxes[attr] = _container(src, value, claimed)
        elif (layer := src.layer(value)) is not None:
            info.layers[attr] = Site(value, layer[0], layer[1], src.line(value), attr, stmt)
        else:
            info.others[attr] = f"{_show(value.func)}(...)"
            info.uses.add(_last(value.func) or "")
    sites = list(info.layers.values()) + [s for box in info.boxes.values() for s in _sites_of(box)]
    if not sites:
        return None
    forward = methods.get("forward")
    flow = _flow(info, forward, 0) if forward is not None else None
    attrs = set(methods) | set(info.layers) | set(info.boxes) | set(info.others)
    sites.sort(key=lambda s: s.line)
    modules = set(info.layers) | set(info.boxes)
    return Model(cls.name.value, src.line(cls), sites, flow, init, forward, attrs, info.uses, cls, modules)


def _self_assignments(init: cst.FunctionDef) -> list[tuple[cst.SimpleStatementLine, str, cst.BaseExpression]]:
    out = []
    for line in _lines(init.body):
        for small in line.body:
            if isinstance(small, cst.Assign) and len(small.targets) == 1:
                target, value = small.targets[0].target, small.value
            elif isinstance(small, cst.AnnAssign) and small.value is not None:
                target, value = small.target, small.value
            else:
                continue
            if isinstance(target, cst.Attribute) and _dotted_is(target.value, "self"):
                out.append((line, target.attr.value, value))
    return out


def _lines(block: cst.BaseSuite) -> list[cst.SimpleStatementLine]:
    """The simple statements of a block, nested blocks (if, with, for) included, in order."""
    out: list[cst.SimpleStatementLine] = []
    body = block.body if isinstance(block, cst.IndentedBlock) else [block]
    for stmt in body:
        if isinstance(stmt, cst.SimpleStatementLine):
            out.append(stmt)
        elif isinstance(stmt, cst.BaseCompoundStatement) and not isinstance(stmt, cst.FunctionDef):
            out.extend(_lines(stmt.body))
    return out


def _dotted_is(node: cst.BaseExpression, name: str) -> bool:
    return isinstance(node, cst.Name) and node.value == name


def _flow(info: _Class, func: cst.FunctionDef, depth: int) -> list[Step]:
    order = _Order()
    func.body.visit(order)
    steps: list[Step] = []
    for call in order.calls:
        steps.extend(_steps_of(info, call, depth))
    return steps


class _Order(cst.CSTVisitor):
    """Calls in the order Python evaluates them (a call after its arguments and its receiver)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[cst.Call] = []

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:  # noqa: N802
        return False  # a function defined inside forward runs when called, not here

    def visit_Lambda(self, node: cst.Lambda) -> bool:  # noqa: N802
        return False

    def leave_Call(self, original_node: cst.Call) -> None:  # noqa: N802
        self.calls.append(original_node)


def _steps_of(info: _Class, call: cst.Call, depth: int) -> list[Step]:
    src, func = info.src, call.func
    line = src.line(call)
    if isinstance(func, cst.Attribute) and _dotted_is(func.value, "self"):
        attr = func.attr.value
        if attr in info.layers:
            site = info.layers[attr]
            return [Step(site.spec.kind, site.call, site.line, site, call)]
        if attr in info.boxes:
            return _container_steps(src, info.boxes[attr], call)
        if attr in info.methods and depth < MAX_INLINE:
            return _flow(info, info.methods[attr], depth + 1)
        if attr in IGNORED:
            return []
        return [Step("opaque", call, line, what=f"self.{attr}(...)")]
    full = src.names.full(func)
    if full is not None and (full.startswith("torch.nn.functional.") or full.count(".") == 1):
        name = full.rsplit(".", 1)[-1]
        if full.startswith("torch.") and name in FUNCTIONAL:
            return [Step(FUNCTIONAL[name], call, line)]
        if full.startswith("torch.") and name == "reshape":
            return [_view(call, line, call.args[1:])]
    if isinstance(func, cst.Name) and func.value in IGNORED:
        return []
    if isinstance(func, cst.Attribute) and full is None:
        method = func.attr.value
        if method in IGNORED:
            return []
        kind = TENSOR_METHODS.get(method)
        if kind == "view":
            return [_view(call, line, call.args)]
        if kind is not None:
            return [Step(kind, call, line)]
    if full is not None and full.rsplit(".", 1)[-1] in IGNORED:
        return []
    return [Step("opaque", call, line, what=f"{_show(func)}(...)")]


def _view(call: cst.Call, line: int, args: Sequence[cst.Arg]) -> Step:
    """``x.view(-1, N)``: a flatten to N features ("view"); ``x.view(n, -1)``: a plain flatten."""
    values = [a.value for a in args]
    if len(values) == 1 and isinstance(values[0], cst.Tuple):
        values = [e.value for e in values[0].elements]
    if len(values) == 2 and is_minus_one(values[1]):
        return Step("flatten", call, line)
    if len(values) == 2:
        return Step("view", call, line)
    return Step("reshape", call, line, what=f"a reshape to {len(values)} axes")


def is_minus_one(node: cst.BaseExpression) -> bool:
    return (
        isinstance(node, cst.UnaryOperation)
        and isinstance(node.operator, cst.Minus)
        and isinstance(node.expression, cst.Integer)
        and node.expression.value == "1"
    )


def view_size(step: Step) -> cst.Arg | None:
    """The argument of a "view" step that says the features: ``N`` of ``x.view(-1, N)``."""
    args = list(step.node.args)
    if not args or isinstance(args[-1].value, cst.Tuple):
        return None  # a shape tuple (torch.reshape(x, (-1, N))): not rewritten in place
    return args[1] if len(args) == 2 else None


# -- following a size ---------------------------------------------------------------------------------


@dataclass(eq=False)
class Follow:
    """What takes the output size of one step: the layer that consumes it, and what lies between."""

    norms: list[tuple[Site, bool]] = field(default_factory=list)  # (layer sized by it, after a flatten)
    views: list[Step] = field(default_factory=list)  # x.view(-1, N): N are the features after a flatten
    consumer: Site | None = None
    flattened: bool = False  # a flatten lies before the consumer: its input is C*H*W
    blocked: str | None = None  # why the size cannot be followed


def follow(flow: list[Step], start: int, produced: bool = True) -> Follow:
    """Where the size that flow[start] gives goes: through passthrough steps to the layer that takes it.

    ``produced``: flow[start] makes the size (a layer being widened, which must be applied once); else
    the size is made by a layer added after it."""
    out = Follow()
    producer = flow[start].site if produced else None
    if producer is not None and sum(1 for s in flow if s.site is producer) > 1:
        out.blocked = f"nn.{producer.name} at line {producer.line} is applied more than once in forward"
        return out
    for step in flow[start + 1 :]:
        if step.kind in ("act", "dropout", "pool", "global_pool"):
            continue
        if step.kind == "norm" and step.site is not None:
            out.norms.append((step.site, out.flattened))
        elif step.kind in ("flatten", "view"):
            out.flattened = True
            if step.kind == "view":
                out.views.append(step)
        elif step.kind in ("conv", "dense") and step.site is not None:
            out.consumer = step.site
            return out
        else:
            out.blocked = f"{step.what or step.kind} at line {step.line}"
            return out
    return out


def rescaled(node: cst.BaseExpression, old: int, new: int, flattened: bool) -> cst.BaseExpression | None:
    """The size ``node`` says, for ``new`` channels instead of ``old``; None when it cannot be told.

    Not flattened, the size is the channels themselves. After a flatten it is C*H*W: a product with
    the factor ``old`` gets ``new`` in its place (``16 * 4 * 4`` -> ``32 * 4 * 4``), a number N divisible
    by ``old`` becomes ``N // old * new``."""
    if isinstance(node, cst.Integer) and not flattened:
        return cst.Integer(str(new)) if int(node.value) == old else None
    if not flattened:
        return None
    if isinstance(node, cst.Integer):
        value = int(node.value)
        return cst.Integer(str(value // old * new)) if value % old == 0 else None
    factors = _factors(node)
    if factors is None:
        return None
    for factor in factors:
        if isinstance(factor, cst.Integer) and int(factor.value) == old:
            replaced = node.deep_replace(factor, cst.Integer(str(new)))
            return replaced if isinstance(replaced, cst.BaseExpression) else None
    return None


def _factors(node: cst.BaseExpression) -> list[cst.BaseExpression] | None:
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Multiply) and not node.lpar:
        left, right = _factors(node.left), _factors(node.right)
        return None if left is None or right is None else left + right
    return [node]
