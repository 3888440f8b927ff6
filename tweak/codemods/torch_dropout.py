"""Regularize a PyTorch model (``AddDropout``): ``nn.Dropout(p)`` before its output layer, or a lower
dropout rate there raised."""

from __future__ import annotations

from typing import Any

import libcst as cst
from libcst.codemod import CodemodContext

from tweak.codemods.base import arg_value, literal
from tweak.codemods.torch_edits import (
    Edits,
    apply_before,
    bind_in_init,
    free_name,
    input_of,
    layer_call,
    main_model,
    self_call,
)
from tweak.torch_flow import read
from tweak.torch_model import Step

DESCRIPTION = "Add nn.Dropout(p) before the output nn.Linear; raise a lower dropout rate there."
DEFAULT_P = 0.5  # nn.Dropout() and F.dropout(x)


def add_dropout(
    tweak: Any, module: cst.Module, context: CodemodContext, quote: str
) -> tuple[cst.Module, str]:
    src = read(module)
    model = main_model(src, "dense")
    if model is None or model.flow is None:
        raise tweak.not_applicable("no nn.Linear layer to put a dropout before")
    flow = model.flow
    last = max(i for i, s in enumerate(flow) if s.kind == "dense" and s.site)
    rate = float(tweak.rate)
    edits = Edits()
    drops = _dropouts_before(flow, last)
    if drops:
        raised = []
        for step in drops:
            where = (0, "p") if step.site else (1, "p")
            arg = arg_value(step.node, *where)
            old = (
                float(arg.value.evaluated_value)
                if arg and isinstance(arg.value, cst.Float | cst.Integer)
                else None
            )
            if arg is not None and old is None:
                continue  # a rate the code computes: left as written
            if (old if old is not None else DEFAULT_P) < rate:
                edits.set_arg(step.node, where, literal(rate))
                raised.append(
                    f"dropout {old if old is not None else DEFAULT_P:g} -> {rate:g} at line {step.line}"
                )
        if not raised:
            raise tweak.not_applicable(
                f"the output layer already has a dropout of at least {rate:g} before it"
            )
        return src.module.visit(edits), ", ".join(raised)
    out = flow[last].site
    assert out is not None
    new = layer_call(out.call, "Dropout", [(None, rate)], context)
    if out.container is not None:
        if out.container.keyed:
            raise tweak.not_applicable("the output layer is in an nn.Sequential(OrderedDict(...))")
        edits.call(out.container.call).inserts.append((out.index, [new]))
    else:
        use = flow[last].use
        tensor = input_of(use) if use is not None else None
        if use is None or tensor is None or out.stmt is None:
            raise tweak.not_applicable("the output layer is not applied in forward")
        attr = free_name(model, "dropout")
        bind_in_init(edits, out, attr, new, after=False)
        apply_before(edits, src, use, tensor, self_call(attr))
    return src.module.visit(edits), f"add nn.Dropout({rate:g}) before the output layer (line {out.line})"


def _dropouts_before(flow: list[Step], last: int) -> list[Step]:
    """The dropouts between the output layer and the layer with weights before it."""
    found = []
    for step in reversed(flow[:last]):
        if step.kind in ("conv", "dense", "opaque", "flatten", "view"):
            break
        if step.kind == "dropout":
            found.append(step)
    return found
