"""Widen a PyTorch model (``ScaleFilters``, ``ScaleUnits``): the out_channels of its convolutions or the
out_features of its hidden Linear layers, with every following layer's input kept consistent."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import libcst as cst
from libcst.codemod import CodemodContext

from tweak.codemods.base import arg_value
from tweak.codemods.torch_edits import Edits, input_of
from tweak.torch_flow import Follow, follow, read, rescaled, view_size
from tweak.torch_model import Model, Source
from tweak.torch_training import Values

DESCRIPTION = (
    "Widen nn.Conv2d out_channels or hidden nn.Linear out_features, keeping what follows consistent."
)

Op = Callable[[Edits], None]


def widen_filters(
    tweak: Any, module: cst.Module, context: CodemodContext, quote: str
) -> tuple[cst.Module, str]:
    return _widen(
        tweak, module, "filters", lambda m: [i for i, s in enumerate(m.flow or []) if s.kind == "conv"]
    )


def widen_units(
    tweak: Any, module: cst.Module, context: CodemodContext, quote: str
) -> tuple[cst.Module, str]:
    return _widen(tweak, module, "hidden units", Model.hidden_dense)


@dataclass
class _Widening:
    src: Source
    values: Values
    factor: float
    edits: Edits = field(default_factory=Edits)
    notes: list[str] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)  # the values written once for several layers


def _widen(
    tweak: Any, module: cst.Module, what: str, targets: Callable[[Model], list[int]]
) -> tuple[cst.Module, str]:
    src = read(module)
    job = _Widening(src, Values(src), float(tweak.factor))
    changed: list[str] = []
    for model in src.models:
        if model.flow is None:
            job.notes.append(f"{model.name} has no forward to follow")
            continue
        for index in targets(model):
            said = _widen_one(job, model, index)
            if said:
                changed.append(said)
    if not changed:
        raise tweak.not_applicable("; ".join(job.notes) or f"no {what} to scale")
    lazy = "".join(f"; {n}" for n in job.notes if "Lazy" in n)
    return src.module.visit(job.edits), f"{what} " + ", ".join(changed) + lazy


def _widen_one(job: _Widening, model: Model, index: int) -> str | None:
    """Widen one layer: its size where it is written (the call, or the one constant or default it reads:
    the layers reading the same name follow it), and what follows kept consistent."""
    assert model.flow is not None
    site = model.flow[index].site
    arg = arg_value(site.call, *site.spec.outs) if site and site.spec.outs else None
    if site is None or site.spec.outs is None or arg is None:
        return None
    written = (
        [arg.value] if isinstance(arg.value, cst.Integer) else [w.node for w in job.values.resolve(arg.value)]
    )
    if len(written) != 1 or not isinstance(written[0], cst.Integer):
        job.notes.append(f"the size of nn.{site.name} at line {site.line} is not written as a number")
        return None
    if id(written[0]) in job.seen:
        return None
    old = int(written[0].value)
    new = max(1, round(old * job.factor))
    plan = follow(model.flow, index)
    if new == old or plan.blocked:
        if plan.blocked:
            job.notes.append(
                f"nn.{site.name} at line {site.line} kept: its output goes through {plan.blocked}"
            )
        return None
    same = None if written[0] is arg.value else _text(arg.value)
    if same is not None and _read_before(model, index, same):
        job.notes.append(
            f"nn.{site.name} at line {site.line} kept: its size {same} also sizes what comes before it"
        )
        return None
    ops = consistent(job.src, plan, old, new, job.notes, same)
    if ops is None:
        return None
    for op in ops:
        op(job.edits)
    job.seen.add(id(written[0]))
    job.edits.replace[written[0]] = lambda _: cst.Integer(str(new))
    return f"{old} -> {new}"


def _read_before(model: Model, index: int, same: str) -> bool:
    """Whether the widened layer's own input size, or a size of a layer before it, reads ``same``: changing
    the name would change what comes before it too."""
    assert model.flow is not None
    sites = [s.site for s in model.flow[: index + 1] if s.site is not None]
    wheres = [(site, where) for site in sites for where in (site.spec.ins, site.spec.outs) if where]
    producer = model.flow[index].site
    for site, where in wheres:
        if site is producer and where == site.spec.outs:
            continue
        arg = arg_value(site.call, *where)
        if arg is not None and _follows(arg.value, same):
            return True
    return False


def _text(node: cst.CSTNode) -> str:
    return cst.Module([]).code_for_node(node)


def _follows(node: cst.BaseExpression, same: str | None) -> bool:
    """Whether a size reads the same name as the widened one (``hidden``, ``hidden * 7 * 7``)."""
    if same is None:
        return False
    factors = [node]
    while isinstance(factors[0], cst.BinaryOperation) and isinstance(factors[0].operator, cst.Multiply):
        top = factors.pop(0)
        assert isinstance(top, cst.BinaryOperation)
        factors[:0] = [top.left, top.right]
    return any(_text(f) == same for f in factors) or _text(node) == same


def consistent(
    src: Source, plan: Follow, old: int, new: int, notes: list[str], same: str | None = None
) -> list[Op] | None:
    """The edits that keep what follows a size consistent when it goes from ``old`` to ``new``: the
    normalizations sized by it, the ``view(-1, N)`` after a flatten, and the layer that takes it (a
    LazyLinear when its input size cannot be told); a size that reads ``same`` (the name the new size is
    written in) follows by itself. None when one cannot be kept consistent."""
    ops: list[Op] = []
    for site, flat in plan.norms:
        arg = arg_value(site.call, *site.spec.ins) if site.spec.ins else None
        if arg is not None and _follows(arg.value, same):
            continue
        value = rescaled(arg.value, old, new, flat) if arg is not None else None
        if value is not None and site.spec.ins is not None:
            ops.append(lambda e, s=site, v=value: e.set_arg(s.call, s.spec.ins, v))  # type: ignore[misc]
        elif site.spec.lazy:
            ops.append(lambda e, s=site: e.make_lazy(s))  # type: ignore[misc]
        else:
            notes.append(f"nn.{site.name} at line {site.line} cannot follow the new size")
            return None
    for view in plan.views:
        size = view_size(view)
        if size is not None and _follows(size.value, same):
            continue
        value = rescaled(size.value, old, new, True) if size is not None else None
        if size is not None and value is not None:
            ops.append(lambda e, a=size, v=value: e.replace.__setitem__(a.value, lambda _: v))  # type: ignore[misc]
        else:
            ops.append(lambda e, v=view: e.replace.__setitem__(v.node, _flatten(src)))  # type: ignore[misc]
    consumer = plan.consumer
    if consumer is None or consumer.spec.ins is None:
        return ops
    arg = arg_value(consumer.call, *consumer.spec.ins)
    if arg is not None and _follows(arg.value, same):
        return ops
    value = rescaled(arg.value, old, new, plan.flattened) if arg is not None else None
    if value is not None:
        ops.append(lambda e: e.set_arg(consumer.call, consumer.spec.ins, value))  # type: ignore[arg-type]
    elif consumer.spec.lazy:
        ops.append(lambda e: e.make_lazy(consumer))
        notes.append(
            f"nn.{consumer.name} at line {consumer.line} became nn.{consumer.spec.lazy} "
            "(its input size could not be followed)"
        )
    else:
        notes.append(f"nn.{consumer.name} at line {consumer.line} cannot follow the new size")
        return None
    return ops


def _flatten(src: Source) -> Callable[[cst.CSTNode], cst.CSTNode]:
    """A view whose size cannot be told becomes ``torch.flatten(x, 1)``."""
    torch = src.names.alias("torch") or "torch"

    def build(node: cst.CSTNode) -> cst.CSTNode:
        assert isinstance(node, cst.Call)
        tensor = input_of(node)
        func = cst.Attribute(cst.Name(torch), cst.Name("flatten"))
        return cst.Call(func, [cst.Arg(tensor or cst.Name("x")), cst.Arg(cst.Integer("1"))])

    return build
