"""Widen a PyTorch model (``ScaleFilters``, ``ScaleUnits``): the out_channels of its convolutions or the
out_features of its hidden Linear layers, with every following layer's input kept consistent."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import libcst as cst
from libcst.codemod import CodemodContext

from tweak.codemods.base import arg_value
from tweak.codemods.torch_edits import Edits, input_of, number_arg
from tweak.torch_flow import Follow, follow, read, rescaled, view_size
from tweak.torch_model import Model, Source

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


def _widen(
    tweak: Any, module: cst.Module, what: str, targets: Callable[[Model], list[int]]
) -> tuple[cst.Module, str]:
    src = read(module)
    edits = Edits()
    changed: list[str] = []
    notes: list[str] = []
    for model in src.models:
        if model.flow is None:
            notes.append(f"{model.name} has no forward to follow")
            continue
        for index in targets(model):
            said = _widen_one(src, model, index, float(tweak.factor), edits, notes)
            if said:
                changed.append(said)
    if not changed:
        why = "; ".join(notes) or f"no {what} to scale"
        raise tweak.not_applicable(why if notes else f"no {what} to scale")
    lazy = [n for n in notes if "Lazy" in n]
    return src.module.visit(edits), f"{what} " + ", ".join(changed) + "".join(f"; {n}" for n in lazy)


def _widen_one(
    src: Source, model: Model, index: int, factor: float, edits: Edits, notes: list[str]
) -> str | None:
    assert model.flow is not None
    site = model.flow[index].site
    if site is None or site.spec.outs is None:
        return None
    old = number_arg(site.call, site.spec.outs)
    if old is None:
        notes.append(f"the size of nn.{site.name} at line {site.line} is not written as a number")
        return None
    new = max(1, round(old * factor))
    if new == old:
        return None
    plan = follow(model.flow, index)
    if plan.blocked:
        notes.append(f"nn.{site.name} at line {site.line} kept: its output goes through {plan.blocked}")
        return None
    ops = consistent(src, plan, old, new, notes)
    if ops is None:
        return None
    for op in ops:
        op(edits)
    edits.set_arg(site.call, site.spec.outs, cst.Integer(str(new)))
    return f"{old} -> {new}"


def consistent(src: Source, plan: Follow, old: int, new: int, notes: list[str]) -> list[Op] | None:
    """The edits that keep what follows a size consistent when it goes from ``old`` to ``new``: the
    normalizations sized by it, the ``view(-1, N)`` after a flatten, and the layer that takes it (a
    LazyLinear when its input size cannot be told). None when one cannot be kept consistent."""
    ops: list[Op] = []
    for site, flat in plan.norms:
        arg = arg_value(site.call, *site.spec.ins) if site.spec.ins else None
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
        value = rescaled(size.value, old, new, True) if size is not None else None
        if size is not None and value is not None:
            ops.append(lambda e, a=size, v=value: e.replace.__setitem__(a.value, lambda _: v))  # type: ignore[misc]
        else:
            ops.append(lambda e, v=view: e.replace.__setitem__(v.node, _flatten(src)))  # type: ignore[misc]
    consumer = plan.consumer
    if consumer is None or consumer.spec.ins is None:
        return ops
    arg = arg_value(consumer.call, *consumer.spec.ins)
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
